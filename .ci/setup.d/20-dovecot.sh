#!/usr/bin/env bash
# Dovecot for the IMAP (OAuth2 passdb) and POP3 tests: tests/dovecot_server.py starts private
# instances on free loopback ports; the packages must not start a system instance, so
# service starts are forbidden for the duration of the install (policy-rc.d, as
# ../shared/imap-server/start-dovecot.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
created=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created=1
fi
trap '[ "$created" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
./apt-install dovecot-imapd dovecot-pop3d openssl

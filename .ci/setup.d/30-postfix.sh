#!/usr/bin/env bash
# What tests/test_pipe_postfix.py and tests/test_deploy.py need from Debian (idempotent):
#   postfix  - the private Postfix instance the pipe test starts on loopback (`postfix -c DIR`);
#              preseeded to "No configuration": no /etc/postfix/main.cf is written and no
#              system instance is started, the test brings its own configuration directory.
#   acl      - setfacl: the test lets the pipe(8) user (nobody; pipe refuses root) reach this
#              Python and virtualenv when a parent directory (/root, a 0700 mkdtemp) blocks it.
#   systemd  - systemd-analyze, for `systemd-analyze verify` of the units under examples/systemd.
set -euo pipefail
here=$(dirname "$0")
if ! dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "install ok installed"; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi
bash "$here/../apt-install" postfix acl systemd

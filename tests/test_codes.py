"""Tests of dsnparse.codes and rules/codes.yaml.

The expected tables below are typed from /work/shared/reference/status-codes.md (§1.2 registry,
§4 seed table), not read from codes.yaml, so the data file is checked against the reference.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from dsnparse import codes
from dsnparse.codes import (Classification, CodeRow, classify, load_table, normalize_status,
                            status_from_reply_code, title)
from dsnparse.errors import RuleError

# §4 Seed table: (code, type, English description).
SEED = [
    ("421", "soft", "Service not available"),
    ("450", "soft", "Mailbox unavailable"),
    ("451", "soft", "Processing error"),
    ("452", "soft", "Insufficient system storage"),
    ("500", "hard", "Address does not exist"),
    ("510", "hard", "Other address status"),
    ("511", "hard", "Bad address"),
    ("512", "hard", "Bad destination system address"),
    ("513", "hard", "Bad destination mailbox address syntax"),
    ("514", "hard", "Destination mailbox address ambiguous"),
    ("515", "hard", "Destination mailbox address valid"),
    ("516", "hard", "Mailbox has moved"),
    ("517", "hard", "Bad sender's mailbox address syntax"),
    ("518", "hard", "Bad sender's system address"),
    ("520", "soft", "Other or undefined mailbox status"),
    ("521", "soft", "Mailbox disabled, not accepting messages"),
    ("522", "soft", "Mailbox full"),
    ("523", "hard", "Message length exceeds administrative limit"),
    ("524", "hard", "Mailing list expansion problem"),
    ("530", "hard", "Other or undefined mail system status"),
    ("531", "soft", "Mail system full"),
    ("532", "hard", "System not accepting network messages"),
    ("533", "hard", "System not capable of selected features"),
    ("534", "hard", "Message too big for system"),
    ("540", "hard", "Other or undefined network or routing status"),
    ("541", "hard", "No answer from host"),
    ("542", "hard", "Bad connection"),
    ("543", "hard", "Routing server failure"),
    ("544", "hard", "Unable to route"),
    ("545", "soft", "Network congestion"),
    ("546", "hard", "Routing loop detected"),
    ("547", "hard", "Delivery time expired"),
    ("550", "hard", "Other or undefined protocol status"),
    ("551", "hard", "Invalid command"),
    ("552", "hard", "Syntax error"),
    ("553", "soft", "Too many recipients"),
    ("554", "hard", "Invalid command arguments"),
    ("555", "hard", "Wrong protocol version"),
    ("560", "hard", "Other or undefined media error"),
    ("561", "hard", "Media not supported"),
    ("562", "hard", "Conversion required and prohibited"),
    ("563", "hard", "Conversion required but not supported"),
    ("564", "hard", "Conversion with loss performed"),
    ("565", "hard", "Conversion failed"),
    ("570", "hard", "Other or undefined security status"),
    ("571", "hard", "Delivery not authorized, message refused"),
    ("572", "hard", "Mailing list expansion prohibited"),
    ("573", "hard", "Security conversion required but not possible"),
    ("574", "hard", "Security features not supported"),
    ("575", "hard", "Cryptographic failure"),
    ("576", "hard", "Cryptographic algorithm not supported"),
    ("577", "hard", "Message integrity failure"),
    ("911", "hard", "Hard bounce with no bounce code found (may be an invalid address, or a rejection by your own mail server, e.g. a sending limit)"),
]

# §1.2: every registered enhanced code and its registered title (X.6.10 has none).
REGISTRY = [
    ("X.0.0", "Other undefined Status"),
    ("X.1.0", "Other address status"),
    ("X.1.1", "Bad destination mailbox address"),
    ("X.1.2", "Bad destination system address"),
    ("X.1.3", "Bad destination mailbox address syntax"),
    ("X.1.4", "Destination mailbox address ambiguous"),
    ("X.1.5", "Destination address valid"),
    ("X.1.6", "Destination mailbox has moved, No forwarding address"),
    ("X.1.7", "Bad sender's mailbox address syntax"),
    ("X.1.8", "Bad sender's system address"),
    ("X.1.9", "Message relayed to non-compliant mailer"),
    ("X.1.10", "Recipient address has null MX"),
    ("X.2.0", "Other or undefined mailbox status"),
    ("X.2.1", "Mailbox disabled, not accepting messages"),
    ("X.2.2", "Mailbox full"),
    ("X.2.3", "Message length exceeds administrative limit"),
    ("X.2.4", "Mailing list expansion problem"),
    ("X.3.0", "Other or undefined mail system status"),
    ("X.3.1", "Mail system full"),
    ("X.3.2", "System not accepting network messages"),
    ("X.3.3", "System not capable of selected features"),
    ("X.3.4", "Message too big for system"),
    ("X.3.5", "System incorrectly configured"),
    ("X.3.6", "Requested priority was changed"),
    ("X.4.0", "Other or undefined network or routing status"),
    ("X.4.1", "No answer from host"),
    ("X.4.2", "Bad connection"),
    ("X.4.3", "Directory server failure"),
    ("X.4.4", "Unable to route"),
    ("X.4.5", "Mail system congestion"),
    ("X.4.6", "Routing loop detected"),
    ("X.4.7", "Delivery time expired"),
    ("X.5.0", "Other or undefined protocol status"),
    ("X.5.1", "Invalid command"),
    ("X.5.2", "Syntax error"),
    ("X.5.3", "Too many recipients"),
    ("X.5.4", "Invalid command arguments"),
    ("X.5.5", "Wrong protocol version"),
    ("X.5.6", "Authentication Exchange line is too long"),
    ("X.6.0", "Other or undefined media error"),
    ("X.6.1", "Media not supported"),
    ("X.6.2", "Conversion required and prohibited"),
    ("X.6.3", "Conversion required but not supported"),
    ("X.6.4", "Conversion with loss performed"),
    ("X.6.5", "Conversion Failed"),
    ("X.6.6", "Message content not available"),
    ("X.6.7", "Non-ASCII addresses not permitted for that sender/recipient"),
    ("X.6.8", "UTF-8 string reply is required, but not permitted by the SMTP client"),
    ("X.6.9", "UTF-8 header message cannot be transferred to one or more recipients, so the message must be rejected"),
    ("X.6.10", None),
    ("X.7.0", "Other or undefined security status"),
    ("X.7.1", "Delivery not authorized, message refused"),
    ("X.7.2", "Mailing list expansion prohibited"),
    ("X.7.3", "Security conversion required but not possible"),
    ("X.7.4", "Security features not supported"),
    ("X.7.5", "Cryptographic failure"),
    ("X.7.6", "Cryptographic algorithm not supported"),
    ("X.7.7", "Message integrity failure"),
    ("X.7.8", "Authentication credentials invalid"),
    ("X.7.9", "Authentication mechanism is too weak"),
    ("X.7.10", "Encryption Needed"),
    ("X.7.11", "Encryption required for requested authentication mechanism"),
    ("X.7.12", "A password transition is needed"),
    ("X.7.13", "User Account Disabled"),
    ("X.7.14", "Trust relationship required"),
    ("X.7.15", "Priority Level is too low"),
    ("X.7.16", "Message is too big for the specified priority"),
    ("X.7.17", "Mailbox owner has changed"),
    ("X.7.18", "Domain owner has changed"),
    ("X.7.19", "RRVS test cannot be completed"),
    ("X.7.20", "No passing DKIM signature found"),
    ("X.7.21", "No acceptable DKIM signature found"),
    ("X.7.22", "No valid author-matched DKIM signature found"),
    ("X.7.23", "SPF validation failed"),
    ("X.7.24", "SPF validation error"),
    ("X.7.25", "Reverse DNS validation failed"),
    ("X.7.26", "Multiple authentication checks failed"),
    ("X.7.27", "Sender address has null MX"),
    ("X.7.28", "Mail flood detected"),
    ("X.7.29", "ARC validation failure"),
    ("X.7.30", "REQUIRETLS support required"),
]

SOFT_ROWS = {"421", "450", "451", "452", "520", "521", "522", "531", "545", "553"}


# ----------------------------------------------------------------- the seed table

def test_seed_reference_counts():
    assert len(SEED) == 53
    assert sum(1 for c, _, _ in SEED if c.startswith("4")) == 4
    fives = [(c, t) for c, t, _ in SEED if c.startswith("5")]
    assert len(fives) == 48
    assert {c for c, t in fives if t == "soft"} == {"520", "521", "522", "531", "545", "553"}
    assert {c for c, t, _ in SEED if t == "soft"} == SOFT_ROWS


def test_table_has_exactly_the_seed_rows():
    assert set(load_table().rows) == {c for c, _, _ in SEED}


@pytest.mark.parametrize("code,btype,description", SEED)
def test_seed_row(code, btype, description):
    row = load_table().row(code)
    assert isinstance(row, CodeRow)
    assert (row.code, row.bounce_type, row.description) == (code, btype, description)
    assert isinstance(row.description_fr, str) and row.description_fr.strip()
    if code != "911":
        assert row.description_fr != row.description


@pytest.mark.parametrize("code,btype,description", SEED)
def test_seed_row_is_reached_by_classify(code, btype, description):
    if code == "911":
        c = classify(None)
    elif code.startswith("4"):
        c = classify("4.0.0", reply_code=code)     # 4XX rows are reply codes
    else:
        c = classify(f"5.{code[1]}.{code[2]}")      # 5YZ <-> 5.Y.Z
    assert (c.code, c.bounce_type, c.description) == (code, btype, description)
    assert c.description_fr == load_table().row(code).description_fr


@pytest.mark.parametrize("code,french", [
    ("421", "Service non disponible"),
    ("522", "Boîte aux lettres pleine"),
    ("511", "Adresse incorrecte"),
    ("911", "Hard bounce sans code de retour trouvé (peut être une adresse invalide, ou un "
            "rejet par votre propre serveur de messagerie, p. ex. une limite d'envoi)"),
    ("565", "Échec de la conversion"),
    ("547", "Délai de livraison expiré"),
])
def test_french_descriptions(code, french):
    assert load_table().row(code).description_fr == french


# ----------------------------------------------------------------- registry titles

def test_registry_reference_count():
    assert len(REGISTRY) == 81


def test_table_has_exactly_the_registered_codes():
    assert {e.key for e in load_table().enhanced.values()} == {k for k, _ in REGISTRY}


@pytest.mark.parametrize("key,expected", REGISTRY)
def test_registry_title(key, expected):
    assert title(key) == expected
    for cls in "245":
        assert title(cls + key[1:]) == expected


@pytest.mark.parametrize("text", ["4.4.8", "5.9.1", "5.1.64", "X.1", "nonsense", "", "5.1.1 x"])
def test_title_unknown(text):
    assert title(text) is None


# ----------------------------------------------------------------- default reasons

@pytest.mark.parametrize("key,reason", [
    ("X.0.0", "undefined"),
    ("X.1.0", "user_unknown"), ("X.1.1", "user_unknown"), ("X.1.3", "user_unknown"),
    ("X.1.4", "user_unknown"), ("X.1.2", "host_unknown"), ("X.1.5", "delivered"),
    ("X.1.6", "has_moved"), ("X.1.7", "rejected"), ("X.1.8", "rejected"),
    ("X.1.10", "not_accept"),
    ("X.2.0", "filtered"), ("X.2.1", "suspend"), ("X.2.2", "mailbox_full"),
    ("X.2.3", "exceed_limit"), ("X.2.4", "system_error"),
    ("X.3.0", "system_error"), ("X.3.3", "system_error"), ("X.3.5", "system_error"),
    ("X.3.1", "system_full"), ("X.3.2", "not_accept"), ("X.3.4", "mesg_too_big"),
    ("X.4.0", "network_error"), ("X.4.1", "network_error"), ("X.4.2", "network_error"),
    ("X.4.5", "network_error"), ("X.4.6", "network_error"), ("X.4.3", "system_error"),
    ("X.4.4", "host_unknown"), ("X.4.7", "expired"),
    ("X.5.0", "mailer_error"), ("X.5.3", "exceed_limit"), ("X.5.2", "syntax_error"),
    ("X.6.0", "content_error"), ("X.6.5", "content_error"), ("X.6.10", "content_error"),
    ("X.7.0", "security_error"), ("X.7.1", "security_error"), ("X.7.8", "security_error"),
    ("X.7.9", "security_error"), ("X.7.10", "security_error"), ("X.7.14", "security_error"),
    ("X.7.20", "auth_failure"), ("X.7.21", "auth_failure"), ("X.7.22", "auth_failure"),
    ("X.7.23", "auth_failure"), ("X.7.24", "auth_failure"), ("X.7.26", "auth_failure"),
    ("X.7.25", "require_ptr"), ("X.7.27", "not_accept"), ("X.7.28", "spam_detected"),
])
def test_default_reason(key, reason):
    _, s, d = key.split(".")
    assert load_table().enhanced_code(int(s), int(d)).reason == reason
    # a failure never carries "delivered" (the table's reason of a success code)
    assert classify("5" + key[1:]).reason == (reason if reason != "delivered" else "undefined")


@pytest.mark.parametrize("status", ["5.1.5", "4.1.5", "5.3.6", "4.3.6"])
@pytest.mark.parametrize("action", ["failed", "delayed", None])
def test_failure_or_delay_never_delivered(status, action):
    assert classify(status, action=action).reason == "undefined"
    assert classify(status, action="delivered").reason == "delivered"


def test_every_reason_is_in_the_taxonomy():
    assert all(e.reason in codes.REASONS for e in load_table().enhanced.values())
    assert len(codes.REASONS) == 37


def test_reason_falls_back_to_subject_other_then_undefined():
    assert classify("5.1.64").reason == "user_unknown"     # X.1.0
    assert classify("5.4.8").reason == "network_error"     # X.4.0
    assert classify("5.7.133").reason == "security_error"  # X.7.0
    assert classify("5.9.1").reason == "undefined"


# ----------------------------------------------------------------- normalize_status

@pytest.mark.parametrize("text,expected", [
    ("5.1.1", "5.1.1"),
    (" 5.1.1 (comment)", "5.1.1"),
    ("5.1.1(comment)", "5.1.1"),
    ("\t4.4.7\r\n", "4.4.7"),
    ("2.0.0", "2.0.0"),
    ("5.7.133", "5.7.133"),
    ("5.123.456", "5.123.456"),
    ("5.1.10", "5.1.10"),
    ("5.01.1", "5.01.1"),        # kept as written
    ("5.1.1.", "5.1.1"),         # sentence full stop
    ("5.1.1;", "5.1.1"),
    (None, None), ("", None), ("   ", None),
    ("5.1", None), ("5.1.", None), ("5..1", None),
    ("3.1.1", None), ("1.0.0", None), ("6.0.0", None), ("X.1.1", None),
    ("5.1234.1", None), ("5.1.1234", None), ("5.1.1.2", None), ("5.1.1a", None),
    ("55.1.1", None), ("550 5.1.1", None), ("5 .1.1", None),
    ("５.1.1", None), ("5.١.1", None),        # non-ASCII digits
])
def test_normalize_status(text, expected):
    assert normalize_status(text) == expected


def test_normalize_status_rejects_non_strings():
    assert normalize_status(511) is None  # type: ignore[arg-type]


# ----------------------------------------------------------------- status_from_reply_code

@pytest.mark.parametrize("reply,status", [
    ("421", "4.3.2"), ("450", "4.2.0"), ("451", "4.3.0"), ("452", "4.3.1"), ("454", "4.7.0"),
    ("455", "4.5.4"), ("500", "5.5.2"), ("501", "5.5.4"), ("502", "5.5.1"), ("503", "5.5.1"),
    ("504", "5.5.4"), ("521", "5.3.2"), ("530", "5.7.0"), ("534", "5.7.9"), ("535", "5.7.8"),
    ("538", "5.7.11"), ("550", "5.0.0"), ("551", "5.1.6"), ("552", "5.2.2"), ("553", "5.1.3"),
    ("554", "5.0.0"), ("555", "5.5.4"), ("556", "5.1.10"),
    # anything else: class only
    ("432", "4.0.0"), ("453", "4.0.0"), ("499", "4.0.0"), ("505", "5.0.0"), ("525", "5.0.0"),
    ("599", "5.0.0"), ("250", "2.0.0"), ("221", "2.0.0"),
    (" 550 ", "5.0.0"),
])
def test_status_from_reply_code(reply, status):
    assert status_from_reply_code(reply) == status


@pytest.mark.parametrize("reply", ["", "55", "5500", "354", "334", "100", "600", "911", "abc",
                                   "5.1.1", "５５０", None, 550])
def test_status_from_reply_code_invalid(reply):
    assert status_from_reply_code(reply) is None


def test_reply_code_table_is_complete():
    assert set(load_table().reply_codes) == {
        "421", "450", "451", "452", "454", "455", "500", "501", "502", "503", "504", "521",
        "530", "534", "535", "538", "550", "551", "552", "553", "554", "555", "556"}


# ----------------------------------------------------------------- classify

def _c(status, reply=None, **kw):
    c = classify(status, reply, **kw)
    return (c.status, c.status_source, c.code, c.bounce_type, c.description, c.reason)


@pytest.mark.parametrize("status,expected", [
    # one-digit subject/detail with a row
    ("5.1.1", ("5.1.1", "status_field", "511", "hard", "Bad address", "user_unknown")),
    ("5.2.2", ("5.2.2", "status_field", "522", "soft", "Mailbox full", "mailbox_full")),
    ("5.5.3", ("5.5.3", "status_field", "553", "soft", "Too many recipients", "exceed_limit")),
    ("5.0.0", ("5.0.0", "status_field", "500", "hard", "Address does not exist", "undefined")),
    ("5.1.5", ("5.1.5", "status_field", "515", "hard", "Destination mailbox address valid",
               "undefined")),
    ("5.4.7", ("5.4.7", "status_field", "547", "hard", "Delivery time expired", "expired")),
    ("5.7.1", ("5.7.1", "status_field", "571", "hard", "Delivery not authorized, message refused",
               "security_error")),
    ("5.01.01", ("5.01.01", "status_field", "511", "hard", "Bad address", "user_unknown")),
    (" 5.1.1 (unknown user)", ("5.1.1", "status_field", "511", "hard", "Bad address",
                               "user_unknown")),
    # no row: the subject's "other" row, status kept as written
    ("5.1.10", ("5.1.10", "status_field", "510", "hard", "Other address status", "not_accept")),
    ("5.1.64", ("5.1.64", "status_field", "510", "hard", "Other address status", "user_unknown")),
    ("5.1.9", ("5.1.9", "status_field", "510", "hard", "Other address status", "system_error")),
    ("5.3.5", ("5.3.5", "status_field", "530", "hard", "Other or undefined mail system status",
               "system_error")),
    ("5.3.6", ("5.3.6", "status_field", "530", "hard", "Other or undefined mail system status",
               "undefined")),
    ("5.4.8", ("5.4.8", "status_field", "540", "hard",
               "Other or undefined network or routing status", "network_error")),
    ("5.5.6", ("5.5.6", "status_field", "550", "hard", "Other or undefined protocol status",
               "syntax_error")),
    ("5.6.7", ("5.6.7", "status_field", "560", "hard", "Other or undefined media error",
               "content_error")),
    ("5.6.10", ("5.6.10", "status_field", "560", "hard", "Other or undefined media error",
                "content_error")),
    ("5.7.8", ("5.7.8", "status_field", "570", "hard", "Other or undefined security status",
               "security_error")),
    ("5.7.26", ("5.7.26", "status_field", "570", "hard", "Other or undefined security status",
                "auth_failure")),
    ("5.7.133", ("5.7.133", "status_field", "570", "hard",
                 "Other or undefined security status", "security_error")),
    ("5.0.911", ("5.0.911", "status_field", "500", "hard", "Address does not exist",
                 "undefined")),
    # subject outside 0-7
    ("5.9.1", ("5.9.1", "status_field", "500", "hard", "Address does not exist", "undefined")),
    ("5.8.0", ("5.8.0", "status_field", "500", "hard", "Address does not exist", "undefined")),
    ("5.10.1", ("5.10.1", "status_field", "500", "hard", "Address does not exist", "undefined")),
])
def test_classify_permanent(status, expected):
    assert _c(status) == expected


@pytest.mark.parametrize("status,reply,expected", [
    # reply code that is a 4XX row wins the code
    ("4.2.2", "452", ("4.2.2", "status_field", "452", "soft", "Insufficient system storage",
                      "mailbox_full")),
    ("4.7.1", "450", ("4.7.1", "status_field", "450", "soft", "Mailbox unavailable",
                      "security_error")),
    ("4.4.1", "421", ("4.4.1", "status_field", "421", "soft", "Service not available",
                      "network_error")),
    ("4.3.0", "451", ("4.3.0", "status_field", "451", "soft", "Processing error",
                      "system_error")),
    # otherwise 4YZ with the registry title
    ("4.4.7", None, ("4.4.7", "status_field", "447", "soft", "Delivery time expired",
                     "expired")),
    ("4.2.2", None, ("4.2.2", "status_field", "422", "soft", "Mailbox full", "mailbox_full")),
    ("4.7.1", None, ("4.7.1", "status_field", "471", "soft",
                     "Delivery not authorized, message refused", "security_error")),
    ("4.2.2", "552", ("4.2.2", "status_field", "422", "soft", "Mailbox full", "mailbox_full")),
    ("4.0.0", None, ("4.0.0", "status_field", "400", "soft", "Other undefined Status",
                     "undefined")),
    # number shared with a row: the registry title says what it is (see §5 of the reference)
    ("4.5.1", None, ("4.5.1", "status_field", "451", "soft", "Invalid command",
                     "syntax_error")),
    # multi-digit detail or unregistered: 4Y0 with the title of X.Y.0
    ("4.7.26", None, ("4.7.26", "status_field", "470", "soft",
                      "Other or undefined security status", "auth_failure")),
    ("4.1.10", None, ("4.1.10", "status_field", "410", "soft", "Other address status",
                      "not_accept")),
    ("4.4.8", None, ("4.4.8", "status_field", "440", "soft",
                     "Other or undefined network or routing status", "network_error")),
    ("4.7.133", None, ("4.7.133", "status_field", "470", "soft",
                       "Other or undefined security status", "security_error")),
    # subject outside 0-7
    ("4.9.1", None, ("4.9.1", "status_field", "400", "soft", "Other undefined Status",
                     "undefined")),
])
def test_classify_transient(status, reply, expected):
    c = classify(status, reply)
    assert _c(status, reply) == expected
    if c.code in ("421", "450", "451", "452") and reply == c.code:
        assert c.description_fr == load_table().row(c.code).description_fr
    else:
        assert c.description_fr is None


@pytest.mark.parametrize("status", ["4.0.0", "4.1.1", "4.2.1", "4.3.1", "4.4.7", "4.5.3",
                                    "4.6.0", "4.7.0", "4.7.30", "4.99.999"])
@pytest.mark.parametrize("action", ["failed", "delayed"])
def test_every_transient_is_soft(status, action):
    assert classify(status, action=action).bounce_type == "soft"


@pytest.mark.parametrize("reply,expected", [
    ("552", ("5.2.2", "reply_code", "522", "soft", "Mailbox full", "mailbox_full")),
    ("550", ("5.0.0", "reply_code", "500", "hard", "Address does not exist", "undefined")),
    ("553", ("5.1.3", "reply_code", "513", "hard", "Bad destination mailbox address syntax",
             "user_unknown")),
    ("554", ("5.0.0", "reply_code", "500", "hard", "Address does not exist", "undefined")),
    ("551", ("5.1.6", "reply_code", "516", "hard", "Mailbox has moved", "has_moved")),
    ("500", ("5.5.2", "reply_code", "552", "hard", "Syntax error", "syntax_error")),
    ("501", ("5.5.4", "reply_code", "554", "hard", "Invalid command arguments",
             "syntax_error")),
    ("521", ("5.3.2", "reply_code", "532", "hard", "System not accepting network messages",
             "not_accept")),
    ("530", ("5.7.0", "reply_code", "570", "hard", "Other or undefined security status",
             "security_error")),
    ("534", ("5.7.9", "reply_code", "570", "hard", "Other or undefined security status",
             "security_error")),
    ("535", ("5.7.8", "reply_code", "570", "hard", "Other or undefined security status",
             "security_error")),
    ("555", ("5.5.4", "reply_code", "554", "hard", "Invalid command arguments",
             "syntax_error")),
    ("556", ("5.1.10", "reply_code", "510", "hard", "Other address status", "not_accept")),
    ("599", ("5.0.0", "reply_code", "500", "hard", "Address does not exist", "undefined")),
    ("421", ("4.3.2", "reply_code", "421", "soft", "Service not available", "not_accept")),
    ("450", ("4.2.0", "reply_code", "450", "soft", "Mailbox unavailable", "filtered")),
    ("451", ("4.3.0", "reply_code", "451", "soft", "Processing error", "system_error")),
    ("452", ("4.3.1", "reply_code", "452", "soft", "Insufficient system storage",
             "system_full")),
    ("454", ("4.7.0", "reply_code", "470", "soft", "Other or undefined security status",
             "security_error")),
    ("432", ("4.0.0", "reply_code", "400", "soft", "Other undefined Status", "undefined")),
])
def test_classify_bare_reply_code(reply, expected):
    assert _c(None, reply) == expected


@pytest.mark.parametrize("reply", ["550", "551", "552", "553", "554", "555", "500", "521",
                                   "530", "534"])
def test_bare_reply_code_is_never_a_collapsed_enhanced_code(reply):
    """Reply 550 alone means "mailbox unavailable", not row 550 "protocol status"."""
    assert classify(None, reply).code != reply


@pytest.mark.parametrize("bad", ["5.1", "", "garbage", "3.1.1", "5.1.1.1", "2.0.0", "2.1.5"])
def test_unusable_status_falls_back_to_reply_code(bad):
    assert _c(bad, "452") == ("4.3.1", "reply_code", "452", "soft",
                              "Insufficient system storage", "system_full")


@pytest.mark.parametrize("status,reply", [(None, None), ("", None), ("5.1", None),
                                          ("2.0.0", None), ("2.0.0", "250"), (None, "354"),
                                          (None, "abc"), ("bogus", "")])
def test_nothing_is_911(status, reply):
    c = classify(status, reply, status_source="diagnostic_text")
    assert c == Classification(
        None, "none", "911", "hard",
        "Hard bounce with no bounce code found (may be an invalid address, or a rejection by "
        "your own mail server, e.g. a sending limit)",
        "Hard bounce sans code de retour trouvé (peut être une adresse invalide, ou un rejet "
        "par votre propre serveur de messagerie, p. ex. une limite d'envoi)",
        "undefined")


def test_status_wins_over_reply_code():
    assert _c("5.1.1", "452")[2:4] == ("511", "hard")
    assert _c("5.2.2", "550")[2:4] == ("522", "soft")
    assert classify("5.1.1", "452").status_source == "status_field"


@pytest.mark.parametrize("source", ["status_field", "diagnostic_text", "rule"])
def test_status_source_is_kept(source):
    assert classify("5.1.1", status_source=source).status_source == source


@pytest.mark.parametrize("status,code", [("5.1.1", "511"), ("5.7.26", "570"), ("5.0.0", "500"),
                                         ("5.3.4", "534"), ("4.4.7", "447"), ("5.9.9", "500")])
@pytest.mark.parametrize("action", ["delayed", "Delayed", " DELAYED "])
def test_delayed_is_always_soft(status, code, action):
    c = classify(status, action=action)
    assert (c.code, c.bounce_type) == (code, "soft")


def test_delayed_without_status_is_soft_911():
    c = classify(None, action="delayed")
    assert (c.code, c.bounce_type, c.status_source) == ("911", "soft", "none")


@pytest.mark.parametrize("action", ["delivered", "relayed", "expanded", "Delivered"])
@pytest.mark.parametrize("status,reply,expected_status,source", [
    ("2.0.0", None, "2.0.0", "status_field"),
    ("2.1.5", "250", "2.1.5", "status_field"),
    ("5.1.1", None, "5.1.1", "status_field"),
    (None, "250", "2.0.0", "reply_code"),
    (None, None, None, "none"),
])
def test_success_has_no_code(action, status, reply, expected_status, source):
    assert classify(status, reply, action=action) == Classification(
        expected_status, source, None, None, None, None, "delivered")


def test_none_action_counts_as_failed():
    assert classify("5.1.1", action=None).code == "511"


def test_failed_transient_is_soft():
    """RFC 3464 §2.3.3: a 4.x.x with Action failed (gave up) is still a soft condition."""
    assert (classify("4.4.7", action="failed").bounce_type) == "soft"


# ----------------------------------------------------------------- loading

VALID = {
    "codes": {
        **{f"5{y}0": {"type": "hard", "description": f"Row 5{y}0",
                      "description_fr": f"Ligne 5{y}0"} for y in range(8)},
        "911": {"type": "hard", "description": "None found", "description_fr": "Rien trouvé"},
        "452": {"type": "soft", "description": "Storage", "description_fr": "Stockage"},
    },
    "enhanced": {
        "X.0.0": {"title": "Other undefined Status", "reason": "undefined"},
        "X.1.1": {"title": "Bad destination mailbox address", "reason": "user_unknown"},
        "X.6.10": {"title": None, "reason": "content_error"},
    },
    "reply_codes": {
        "552": {"status": "5.2.2", "meaning": "Exceeded storage allocation"},
        "452": {"status": "4.3.1", "meaning": "Insufficient system storage"},
    },
}


def _write(tmp_path, data, name="codes.yaml"):
    p = tmp_path / name
    if isinstance(data, str):
        p.write_text(data, encoding="utf-8")
    else:
        p.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return p


def _mutated(section, key, value=None, *, delete=None, rename=None):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    if rename is not None:
        data[section][rename] = data[section].pop(key)
    elif delete is not None:
        del data[section][key][delete]
    else:
        data[section][key] = value
    return data


def test_valid_minimal_table_loads(tmp_path):
    t = load_table(_write(tmp_path, VALID))
    assert t.row("911").description_fr == "Rien trouvé"
    assert t.enhanced_code(6, 10).title is None
    assert classify("5.1.1", table=t).code == "510"          # no row 511 in this table
    assert classify("5.1.1", table=t).reason == "user_unknown"
    assert classify(None, "552", table=t).status == "5.2.2"
    assert classify("4.2.2", "452", table=t).description == "Storage"
    assert status_from_reply_code("550", table=t) == "5.0.0"
    assert title("5.1.1", table=t) == "Bad destination mailbox address"


def test_default_table_is_cached_and_path_tables_are_not(tmp_path):
    assert load_table() is load_table()
    p = _write(tmp_path, VALID)
    assert load_table(p) is not load_table(p)
    assert load_table(str(p)).path == str(p)
    assert load_table().path.endswith("codes.yaml")


def test_shipped_file_is_the_default():
    from dsnparse.resources import rules_dir
    assert codes.default_path() == rules_dir() / "codes.yaml"
    assert load_table(codes.default_path()).rows == load_table().rows


def test_import_is_lazy(tmp_path):
    code = ("import sys, dsnparse.codes; assert 'yaml' not in sys.modules; "
            "dsnparse.codes.classify('5.1.1'); assert ('yaml' in sys.modules) == (sys.argv[1] == 'cold')")
    root = Path(__file__).resolve().parent.parent
    env = {"PYTHONPATH": str(root), "DSNPARSE_CACHE_DIR": str(tmp_path)}
    # the first run reads codes.yaml and caches the validated table; the next needs no yaml
    for state in ("cold", "warm"):
        subprocess.run([sys.executable, "-c", code, state], check=True, cwd=root, env=env)
    subprocess.run([sys.executable, "-c", code, "cold"], check=True, cwd=root,
                   env=dict(env, DSNPARSE_CACHE="0"))


def test_table_cache_is_keyed_by_the_file(tmp_path, monkeypatch):
    from dsnparse import codes

    monkeypatch.setenv("DSNPARSE_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "codes.yaml"
    src.write_text(codes.default_path().read_text(encoding="utf-8"), encoding="utf-8")
    calls = []

    def build(p):
        calls.append(p)
        return codes._load(p)

    t1 = codes.cached_load(src, build)
    t2 = codes.cached_load(src, build)
    assert len(calls) == 1 and t2.rows == t1.rows
    src.write_text(src.read_text(encoding="utf-8").replace("Mailbox", "Box", 1) + "\n",
                   encoding="utf-8")
    t3 = codes.cached_load(src, build)
    assert len(calls) == 2 and t3.path == str(src)


MALFORMED = [
    # (id, data, expected rule, expected field, words in the message)
    ("wrong type value", _mutated("codes", "911", {"type": "permanent", "description": "x",
                                                   "description_fr": "y"}),
     "911", "type", "hard"),
    ("missing description", _mutated("codes", "452", delete="description"),
     "452", "description", "missing"),
    ("missing description_fr", _mutated("codes", "452", delete="description_fr"),
     "452", "description_fr", "missing"),
    ("empty description", _mutated("codes", "452", {"type": "soft", "description": " ",
                                                    "description_fr": "y"}),
     "452", "description", "non-empty"),
    ("description not a string", _mutated("codes", "452", {"type": "soft", "description": 12,
                                                           "description_fr": "y"}),
     "452", "description", "string"),
    ("two-digit key", _mutated("codes", "452", rename="45"), "45", None, "3-digit"),
    ("four-digit key", _mutated("codes", "452", rename="4520"), "4520", None, "3-digit"),
    ("letter key", _mutated("codes", "452", rename="45x"), "45x", None, "3-digit"),
    ("unquoted key", _mutated("codes", "452", rename=453), "453", None, "quoted"),
    ("unknown key in row", _mutated("codes", "452", {"type": "soft", "description": "x",
                                                     "description_fr": "y", "colour": "red"}),
     "452", "colour", "unknown field"),
    ("row not a mapping", _mutated("codes", "452", "soft"), "452", None, "mapping"),
    ("bad reason name", _mutated("enhanced", "X.1.1", {"title": "t", "reason": "userunknown"}),
     "X.1.1", "reason", "unknown reason"),
    ("missing reason", _mutated("enhanced", "X.1.1", delete="reason"),
     "X.1.1", "reason", "missing"),
    ("missing title", _mutated("enhanced", "X.1.1", delete="title"),
     "X.1.1", "title", "missing"),
    ("unknown key in enhanced", _mutated("enhanced", "X.1.1", {"title": "t", "reason":
                                                               "user_unknown", "rfc": 3463}),
     "X.1.1", "rfc", "unknown field"),
    ("enhanced key with class", _mutated("enhanced", "X.1.1", rename="5.1.1"),
     "5.1.1", None, "X.1.1"),
    ("enhanced key leading zero", _mutated("enhanced", "X.1.1", rename="X.01.1"),
     "X.01.1", None, "leading zeros"),
    ("enhanced key too short", _mutated("enhanced", "X.1.1", rename="X.1"), "X.1", None, "X.1.1"),
    ("enhanced key too long", _mutated("enhanced", "X.1.1", rename="X.1.1000"),
     "X.1.1000", None, "X.1.1"),
    ("reply status invalid", _mutated("reply_codes", "552", {"status": "5.2", "meaning": "m"}),
     "552", "status", "enhanced code"),
    ("reply status wrong class", _mutated("reply_codes", "552", {"status": "4.2.2",
                                                                 "meaning": "m"}),
     "552", "status", "class 5"),
    ("reply key 3xx", _mutated("reply_codes", "552", rename="354"), "354", None, "2, 4 or 5"),
    ("reply missing meaning", _mutated("reply_codes", "552", delete="meaning"),
     "552", "meaning", "missing"),
    ("missing 911", _mutated("codes", "911", rename="912"), "911", None, "required row"),
]


@pytest.mark.parametrize("data,rule,field,words", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_entry(tmp_path, data, rule, field, words):
    p = _write(tmp_path, data)
    with pytest.raises(RuleError) as info:
        load_table(p)
    err = info.value
    assert err.path == str(p)
    assert err.rule == rule
    assert err.field == field
    msg = str(err)
    assert str(p) in msg and repr(rule) in msg and words in msg
    if field is not None:
        assert repr(field) in msg


def test_duplicate_key(tmp_path):
    text = yaml.safe_dump(VALID, sort_keys=False)
    text = text.replace("codes:\n", "codes:\n  '452': {type: soft, description: a, "
                                    "description_fr: b}\n", 1)
    p = _write(tmp_path, text)
    with pytest.raises(RuleError) as info:
        load_table(p)
    assert str(p) in str(info.value) and "'452'" in str(info.value)
    assert "duplicate" in str(info.value) and info.value.rule == "452"


@pytest.mark.parametrize("text,words", [
    ("codes: [unclosed\n", "invalid YAML"),
    ("- a\n- b\n", "top level"),
    ("", "top level"),
    (textwrap.dedent("""\
        codes: {}
        enhanced: {}
        """), "reply_codes"),
])
def test_malformed_file(tmp_path, text, words):
    p = _write(tmp_path, text)
    with pytest.raises(RuleError) as info:
        load_table(p)
    assert str(p) in str(info.value) and words in str(info.value)


def test_unknown_section(tmp_path):
    data = dict(VALID, extra={})
    p = _write(tmp_path, data)
    with pytest.raises(RuleError) as info:
        load_table(p)
    assert info.value.rule == "extra" and str(p) in str(info.value)


def test_missing_file(tmp_path):
    p = tmp_path / "nope.yaml"
    with pytest.raises(RuleError) as info:
        load_table(p)
    assert str(p) in str(info.value) and "cannot read" in str(info.value)

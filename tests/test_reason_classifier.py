"""The one reason classifier: English phrase families (rules/standard/text.yaml), Sisimai's
meanings (the `when` conditions of rules/reasons.yaml), the SMTP command a reply answered,
status-only verdicts, and the completeness of the reasons.yaml documentation."""
from __future__ import annotations

import pytest

import dsnparse
from dsnparse import codes
from dsnparse.reasons import BOUNCE_TYPES, decide, load_reasons, smtp_command


def _dsn(diag: str = "", status: str = "5.0.0", action: str = "failed", text: str = "failed") -> bytes:
    status_line = f"Status: {status}\n" if status else ""
    diag_line = f"Diagnostic-Code: smtp; {diag}\n" if diag else ""
    return (
        "From: MAILER-DAEMON@mx.sender.example\nTo: a@sender.example\nSubject: failure\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=XX\n\n"
        f"--XX\nContent-Type: text/plain\n\n{text}\n\n"
        "--XX\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.sender.example\n\n"
        f"Final-Recipient: rfc822; rcpt@receiver.example\nAction: {action}\n{status_line}"
        f"{diag_line}\n--XX--\n"
    ).encode()


def _verdict(*a, **k):
    return dsnparse.parse(_dsn(*a, **k)).verdicts[0]


# ------------------------------------------------------------ English phrase families
# Each reason worded as different MTAs word it; Status 5.0.0 so that the phrase decides.
@pytest.mark.parametrize("diag,reason", [
    ("550 5.1.1 <rcpt@receiver.example>: Recipient address rejected: User unknown in virtual mailbox table", "user_unknown"),
    ("550 No such user here", "user_unknown"),
    ("550 Please check if address is correct.", "user_unknown"),
    ("550 Check the recipient's email address and try again", "user_unknown"),
    ("550 User not in directory", "user_unknown"),
    ("Invalid receiver address: someone@receiver.example", "user_unknown"),
    ("552 User mailbox exceeds allowed size", "mailbox_full"),
    ("550 Requested action not taken: mailbox unavailable", "user_unknown"),
    ("550 The email account that you tried to reach does not exist.", "user_unknown"),
    ("553 sorry, that recipient doesn't exist (#5.7.1)", "user_unknown"),
    ("552 Mailbox full", "mailbox_full"),
    ("452 The email account that you tried to reach is over quota.", "mailbox_full"),
    ("550 Quota exceeded for this recipient", "mailbox_full"),
    ("552 Message size exceeds fixed maximum message size", "mesg_too_big"),
    ("550 Host or domain name not found. Name service error for name=nodomain.example type=A: Host not found", "host_unknown"),
    ("Name service error for name=receiver.example type=MX: Host not found, try again", "network_error"),
    ("connect to mx.receiver.example[192.0.2.5]:25: Connection refused", "network_error"),
    ("Sorry, I wasn't able to establish an SMTP connection. I'm not going to try again; this message has been in the queue too long.", "network_error"),
    ("retry timeout exceeded", "expired"),
    ("all hosts have been failing for a long time and were last tried after this message arrived", "expired"),
    ("554 Service unavailable; Client host [192.0.2.9] blocked using zen.spamhaus.org", "blocked"),
    ("550 SC-001 Unfortunately, messages from 192.0.2.9 weren't sent.", "blocked"),
    ("Connected to 192.0.2.8 but my name was rejected. Remote host said: 501 Invalid HELO name", "blocked"),
    ("550 Message rejected as spam by Content Filtering", "spam_detected"),
    ("554 Virus found in message: Eicar-Test-Signature", "virus_detected"),
    ("553 Sender address rejected: Domain not found", "rejected"),
    ("550 You do not have permission to post messages to this group", "rejected"),
    ("554 <rcpt@receiver.example>: Relay access denied", "no_relaying"),
    ("550 This mailbox has been disabled", "suspend"),
    ("550 The email account that you tried to reach is disabled.", "suspend"),
    ("550 Recipient has moved; no forwarding address", "has_moved"),
    ("550 Client host rejected: cannot find your reverse hostname, [192.0.2.3]", "require_ptr"),
    ("550 Unauthenticated email from sender.example is not accepted due to domain's DMARC policy", "auth_failure"),
    ("450 Rate limit exceeded, try again slower", "speeding"),
    ("421 Too many concurrent SMTP connections from this IP address", "too_many_conn"),
    ("452 Insufficient system storage", "system_full"),
    ("mail.local: unknown mailer error 75", "mailer_error"),
    ("501 Syntax error in parameters or arguments", "syntax_error"),
    ("554 Illegal attachment type", "content_error"),
    ("550 Message is not RFC 5322 compliant: multiple From headers", "not_compliant_rfc"),
    ("556 Recipient address has null MX", "not_accept"),
    ("550 Message rejected for policy reasons", "policy_violation"),
    ("530 Authentication required", "security_error"),
    ("530 Must issue a STARTTLS command first", "failed_starttls"),
    ("TLS negotiation failed with mx.receiver.example: handshake failure", "failed_starttls"),
    ("550 TLS is required for mail from this domain", "failed_starttls"),
    ("Unable to contact LDAP server. I'm not going to try again; this message has been in the queue too long.", "system_error"),
])
def test_english_phrase_families(diag, reason):
    assert _verdict(diag).reason == reason


# ------------------------------------------------------------ the SMTP command
@pytest.mark.parametrize("diag,command", [
    ("host mx.receiver.example[192.0.2.1] said: 550 User unknown (in reply to RCPT TO command)", "RCPT"),
    ("host mx.receiver.example[192.0.2.1] said: 550 User unknown (in reply to end of DATA command)", "DATA"),
    ("host mx.receiver.example said: 553 Address unknown (in reply to MAIL FROM command)", "MAIL"),
    ("host mx.receiver.example refused to talk to me: 554 go away", "CONNECT"),
    ("SMTP error from remote mail server after RCPT TO:<rcpt@receiver.example>: 550 no", "RCPT"),
    ("SMTP error from remote mail server after end of data: 550 no", "DATA"),
    ("SMTP error from remote mail server after pipelined DATA: 550 no", "DATA"),
    ("SMTP error from remote mail server after MAIL FROM:<a@sender.example> SIZE=1234: 553 no", "MAIL"),
    ("SMTP error from remote mail server after initial connection: 554 no", "CONNECT"),
    ("192.0.2.7 does not like recipient. Remote host said: 550 no such user", "RCPT"),
    ("192.0.2.7 failed after I sent the message. Remote host said: 554 refused", "DATA"),
    ("Connected to 192.0.2.7 but sender was rejected. Remote host said: 553 no", "MAIL"),
    # a transcript: the last command is the one the reply answered
    (">>> MAIL From:<a@sender.example> <<< 250 ok >>> RCPT To:<rcpt@receiver.example> <<< 550 no", "RCPT"),
    ("550 5.1.1 User unknown", "none"),
])
def test_command_from_the_diagnostic(diag, command):
    assert smtp_command(diag) == command


def test_command_from_a_transcript_in_the_report_text():
    text = ("... while talking to mx.receiver.example.:\n>>> DATA\n"
            "<<< 550 Unknown user dora@receiver.example\n"
            "550 5.1.1 <dora@receiver.example>... User unknown\n")
    assert smtp_command("550 Unknown user dora@receiver.example", text, "dora@receiver.example") == "DATA"
    exim = ("  gus@receiver.example\n    SMTP error from remote mail server after RCPT TO:<gus@receiver.example>:\n"
            "    550 Unknown user\n  hana@receiver.example\n"
            "    SMTP error from remote mail server after MAIL FROM:<a@sender.example>:\n    553 no\n")
    assert smtp_command("550 Unknown user", exim, "gus@receiver.example") == "RCPT"
    assert smtp_command("553 no", exim, "hana@receiver.example") == "MAIL"
    assert smtp_command("553 no", exim, "nobody@receiver.example") == "none"


def test_command_search_is_linear_on_hostile_text():
    import time

    def cost(n):
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            smtp_command("RCPT " * n + "in reply to " * n)
            smtp_command("", ("x" * 50 + "\n") * n + "rcpt@receiver.example\n", "rcpt@receiver.example")
            best = min(best, time.perf_counter() - t)
        return best

    small, large = cost(2_000), cost(8_000)
    assert large < 10 * small + 0.05  # 4x the text: about 4x the time, not 16x


# ------------------------------------------------------------ Sisimai's meanings
@pytest.mark.parametrize("diag,status,reason", [
    # "user unknown" answered to DATA: the address was accepted at RCPT TO, a filter refused
    ("550 No such user here (in reply to end of DATA command)", "5.0.0", "filtered"),
    ("SMTP error from remote mail server after end of data: 550 Unknown user", "5.0.0", "filtered"),
    ("550 No such user here (in reply to RCPT TO command)", "5.0.0", "user_unknown"),
    # no status and no command: the words keep their meaning
    ("550 No such user here", "", "user_unknown"),
    ("550 No such user here (in reply to end of DATA command)", "", "filtered"),
    # an X.1.x status names the mailbox itself: user_unknown whatever the command
    ("550 5.1.1 No such user here (in reply to end of DATA command)", "5.1.1", "user_unknown"),
    # a mailbox status X.2.x with a "user unknown" and no RCPT TO: filtered; with RCPT TO: user_unknown
    ("550 5.2.1 <rcpt@receiver.example>... User Unknown", "5.2.1", "filtered"),
    ("550 5.2.1 <rcpt@receiver.example>... User Unknown (in reply to RCPT TO command)", "5.2.1", "user_unknown"),
    # an address refused in reply to MAIL FROM is the sender's
    ("553 5.1.0 Address unknown (in reply to MAIL FROM command)", "5.1.0", "rejected"),
    ("553 5.1.0 Address rejected (in reply to MAIL FROM command)", "5.1.0", "rejected"),
    # a domain not found with a transient status: the lookup failed, the domain may exist
    ("451 4.4.0 Host or domain name not found", "4.4.0", "network_error"),
    ("550 5.1.2 Host or domain name not found", "5.1.2", "host_unknown"),
])
def test_sisimai_meanings(diag, status, reason):
    assert _verdict(diag, status).reason == reason


@pytest.mark.parametrize("diag,action,want", [
    # no code at all: the reason's default status stands in (class from reply code / action)
    ("553 Sender address rejected: Domain not found", "failed", ("5.7.1", "rejected")),
    ("Name service error for name=receiver.example type=MX: Host not found, try again",
     "failed", ("5.4.0", "network_error")),
    ("Name service error for name=receiver.example type=MX: Host not found, try again",
     "delayed", ("4.4.0", "network_error")),
])
def test_default_status_lifts_a_failure_without_code(diag, action, want):
    v = _verdict(diag, "", action)
    assert (v.status, v.reason) == want and v.status_source == "rule"


def test_the_rule_says_a_condition_decided():
    v = _verdict("550 No such user here (in reply to end of DATA command)")
    assert v.rule == "rfc3464+standard/text#user-unknown+reasons#filtered"
    assert v.status == "5.0.0" and v.code == "500"  # the status is the message's own


def test_vendor_and_remote_host_reasons_are_final():
    # decide() is only asked about shared phrase lists: a pack-given reason stays
    assert decide("user_unknown", status=None, reply_code="550", action="failed",
                  command=lambda: "DATA") == "filtered"
    assert decide("user_unknown", status=None, reply_code="550", action="failed",
                  command=lambda: "RCPT") is None
    calls = []
    decide("mailbox_full", status="5.2.2", reply_code="552", action="failed",
           command=lambda: calls.append(1) or "none")
    assert not calls  # no condition of mailbox_full's kind needs the command


# ------------------------------------------------------------ status only (no phrase)
@pytest.mark.parametrize("status,action,reason", [
    ("5.2.2", "failed", "mailbox_full"),
    ("5.1.1", "failed", "user_unknown"),
    ("5.1.2", "failed", "host_unknown"),
    ("5.3.4", "failed", "mesg_too_big"),
    ("5.2.1", "failed", "suspend"),
    ("5.1.6", "failed", "has_moved"),
    ("5.7.25", "failed", "require_ptr"),
    ("4.4.7", "failed", "expired"),
    # a delay with no cause named is still in the queue
    ("4.4.0", "delayed", "expired"),
    ("4.0.0", "delayed", "expired"),
    ("4.2.2", "delayed", "mailbox_full"),
])
def test_status_only(status, action, reason):
    assert _verdict("", status, action, text="").reason == reason


@pytest.mark.parametrize("status,reason", [("5.1.5", "undefined"), ("4.1.5", "expired"),
                                           ("5.3.6", "undefined")])
def test_a_failure_never_carries_delivered(status, reason):
    v = _verdict("", status, "failed", text="")
    assert v.action == "failed" and v.reason == reason


def test_success_is_delivered():
    v = _verdict("250 2.0.0 Ok: queued", "2.0.0", "delivered", text="")
    assert v.reason == "delivered"


# ------------------------------------------------------------ reasons.yaml documentation
SISIMAI = {
    "userunknown", "filtered", "rejected", "blocked", "policyviolation", "securityerror",
    "spamdetected", "virusdetected", "contenterror", "mesgtoobig", "exceedlimit", "systemfull",
    "systemerror", "mailererror", "networkerror", "hostunknown", "notaccept", "norelaying",
    "syntaxerror", "toomanyconn", "speeding", "ratelimited", "suspend", "hasmoved",
    "mailboxfull", "expired", "onhold", "undefined", "notcompliantrfc", "badreputation",
    "authfailure", "requireptr", "emailtoolong", "failedstarttls", "vacation", "feedback",
    "delivered",
}


def test_every_sisimai_reason_is_documented():
    table = load_reasons()
    assert {r.sisimai for r in table.values()} == SISIMAI
    assert set(table) == set(codes.REASONS)
    for r in table.values():
        assert r.definition and r.bounce in BOUNCE_TYPES
        if r.bounce != "none":  # a failure reason names its typical codes and phrasing
            assert r.statuses or r.name in ("on_hold",), r.name
            assert r.phrasing or r.name == "undefined", r.name


def test_hard_reasons_are_sisimais():
    table = load_reasons()
    assert {n for n, r in table.items() if r.bounce == "hard"} == {
        "user_unknown", "host_unknown", "has_moved"}
    assert table["not_accept"].bounce == "hard_if_permanent"
    assert {n for n, r in table.items() if r.bounce == "none"} == {"delivered", "feedback", "vacation"}


def test_documented_statuses_are_in_the_status_table():
    tbl = codes.load_table()
    for r in load_reasons().values():
        for s in r.statuses:
            _, subj, det = s.split(".")
            assert tbl.enhanced_code(int(subj), int(det)) is not None, (r.name, s)


def test_command_search_offsets_survive_letters_whose_lower_case_is_longer():
    # "İ".lower() is two characters: offsets into the lowered text must still be the text's
    from dsnparse.reasons import smtp_command

    text = "İ" * 50 + " report\nuser@x.org\n  SMTP error from remote mail server after " \
           "RCPT TO:<user@x.org>: 550 no such user\n"
    assert smtp_command("", text, "user@x.org") == "RCPT"


def test_command_inside_a_word_is_not_a_command():
    from dsnparse.reasons import smtp_command

    assert smtp_command("xRCPT TO:<a@b.c> 550") == "none"
    assert smtp_command("550 5.1.1 (in reply to RCPT TO command)") == "RCPT"


def test_no_valid_recipients_is_an_unknown_user():
    # "554 5.5.1 No valid recipients" / an MMS gateway's "No valid recipients for this MM":
    # every recipient of the message was refused as unknown
    import dsnparse
    msg = (b"From: MAILER-DAEMON@mx.example.org\r\nTo: s@example.com\r\nSubject: Undeliverable\r\n"
           b"\r\nMessage could not be delivered to mobile.\r\nError: No valid recipients for this MM"
           b"\r\n\r\n<5551234567@mms.example.net>: No valid recipients\r\n")
    v, = dsnparse.parse(msg).verdicts
    assert v.final_recipient == "5551234567@mms.example.net" and v.reason == "user_unknown"


def test_command_scan_around_anchor_words_finds_what_a_full_scan_finds():
    # the alternation runs only near its anchor words (reasons._ANCHORS): on texts built from
    # every way a command is written, with filler between, both scans give the same matches
    import random

    from dsnparse import reasons

    pieces = ["after initial connection", "in reply to the HELO command", "after EHLO",
              ">>> LHLO x", "but my name was rejected", "refused to talk to me",
              "SMTP greeting", "end of data", "after pipelined DATA", ">>> DATA",
              "DATA command", "in response to DATA", "failed after I sent the message",
              "failed on DATA", "SMTP:DATA", "[DATA]", "after sending the message",
              "RCPT TO:<a@b.c>", ">>> RCPT To:<x@y.z>", "RCPT_TO", "SMTP:RCPT", "[RCPT]",
              "does not like recipient", "in reply to RCPT TO", "most progress was RCPT",
              "MAIL FROM:<s@t.u>", ">>> MAIL From:<>", "MAIL_FROM", "SMTP:MAIL",
              "in reply to MAIL FROM", "but sender was rejected", "xRCPT TO", "metadata"]
    filler = ["", " ", "\n", "550 5.1.1 user unknown ", "x" * 60, "\n\n  ", "(", "ä"]

    def full(lower):
        out = []
        for m in reasons._COMMAND_SCAN.finditer(lower):
            i = m.start()
            if i and (lower[i - 1].isalnum() or lower[i - 1] == "_") and \
                    (lower[i].isalnum() or lower[i] == "_"):
                continue
            out.append((i, m.end(), m.lastgroup))
        return out

    rnd = random.Random(3464)
    for _ in range(2000):
        text = "".join(rnd.choice(filler) + rnd.choice(pieces) for _ in range(rnd.randint(1, 8)))
        lower = text.lower()
        assert list(reasons._scan(lower)) == full(lower), text

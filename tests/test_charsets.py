"""Text parts and encoded words in legacy charsets are decoded before patterns run
(dsnparse.load.decode_text / decode_word): the documented order, supersets of common labels,
unlabelled and mislabelled 8-bit parts, and never an exception."""
from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings, strategies as st

import dsnparse
from dsnparse.load import decode_text, decode_word, unfold

RU = "Ваше письмо не может быть доставлено. Получатель: ivan@example.ru. Причина: ящик переполнен."
JA = "次の受信者またはグループへの配信に失敗しました。宛先のアドレスが見つかりません。"
ZH = "很抱歉您发送的邮件被退回。收件人：li.zhe@example.cn（李喆）收件人地址不存在"  # 喆: GBK, not GB2312
TW = "您的郵件無法傳遞給下列收件者。原因：信箱已滿"
KO = "보내신 메일이 다음 받는 사람에게 전송되지 못했습니다. 존재하지 않는 사용자입니다."


@pytest.mark.parametrize("text, encoding, label", [
    (JA, "iso2022_jp", "iso-2022-jp"),
    (JA, "iso2022_jp", None),            # 7-bit ISO-2022-JP without a label: by its escapes
    (JA, "iso2022_jp", "us-ascii"),      # ... or under a wrong one
    (JA, "cp932", "shift_jis"),
    (JA, "cp932", None),
    (JA, "euc_jp", "euc-jp"),
    (ZH, "gbk", "gb2312"),               # a gb2312 label on GBK bytes
    (ZH, "gb18030", "GB2312"),
    (ZH, "gbk", None),
    (TW, "big5", "big5"),
    (TW, "cp950", "big5"),
    (KO, "euc_kr", "euc-kr"),
    (KO, "cp949", "ks_c_5601-1987"),
    (KO, "euc_kr", None),
    (RU, "koi8_r", "koi8-r"),
    (RU, "koi8_r", None),
    (RU, "cp1251", "windows-1251"),
    (RU, "cp1251", None),                # no label
    (RU, "cp1251", "iso-8859-1"),        # a Western label on Cyrillic bytes
    (RU, "cp1251", "us-ascii"),
    (RU, "utf-8", "koi8-r"),             # UTF-8 under a wrong label
    (KO, "utf-7", "utf-7"),
    ("Grüße aus Köln – 5 €", "cp1252", "iso-8859-1"),  # windows-1252 under its ISO label
    ("naïve café", "utf-8", None),
])
def test_text_is_decoded(text, encoding, label):
    assert decode_text(text.encode(encoding), label) == text


def test_stray_8bit_octets_in_ascii_text_are_windows_1252_without_detection(monkeypatch):
    from dsnparse import load
    monkeypatch.setattr(load, "_detect", lambda p: pytest.fail("detector run"))
    assert decode_text(b"Regards, J\xfcrgen M\xfcller \x96 Sales", None) == "Regards, Jürgen Müller – Sales"
    assert decode_text(b"Caf\xe9", "us-ascii") == "Café"


def test_ascii_and_utf8_take_the_fast_path_unchanged():
    assert decode_text(b"550 5.1.1 user unknown\n", None) == "550 5.1.1 user unknown\n"
    assert decode_text("Empfänger".encode(), "utf-8") == "Empfänger"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([None, "utf-8", "gb2312", "big5", "shift_jis",
                                                 "iso-2022-jp", "euc-kr", "koi8-r", "utf-7",
                                                 "x-no-such-charset", "iso-8859-1", "us-ascii"]))
def test_decoding_never_raises(data, label):
    assert isinstance(decode_text(data, label), str)
    assert isinstance(decode_word(data, label), str)


def test_encoded_words_in_legacy_charsets():
    b = base64.b64encode("系统退信：李喆".encode("gbk")).decode()
    assert unfold(f"=?gb2312?B?{b}?=") == "系统退信：李喆"
    b = base64.b64encode("配信エラー".encode("iso2022_jp")).decode()
    assert unfold(f"=?ISO-2022-JP?B?{b}?=") == "配信エラー"
    b = base64.b64encode("반송".encode("cp949")).decode()
    assert unfold(f"=?ks_c_5601-1987?B?{b}?= x") == "반송 x"
    assert unfold("=?x-unknown-cs?Q?abc?=") == "abc"
    # raw ISO-2022-JP in a header (no encoded word), as old Japanese mailers write it
    assert unfold("配信エラー: 件名".encode("iso2022_jp").decode("ascii")) == "配信エラー: 件名"
    assert unfold("a\x1bb") == "a\x1bb"


def _notice(body: bytes, content_type: str) -> bytes:
    return (b"From: MAILER-DAEMON@mx.example.ru\nTo: a@example.com\nSubject: =?koi8-r?B?"
            + base64.b64encode("Письмо не доставлено".encode("koi8_r"))
            + b"?=\nMIME-Version: 1.0\nContent-Type: " + content_type.encode()
            + b"\nContent-Transfer-Encoding: 8bit\n\n" + body)


@pytest.mark.parametrize("encoding, content_type", [
    ("koi8_r", "text/plain; charset=koi8-r"),
    ("cp1251", "text/plain"),
    ("cp1251", "text/plain; charset=iso-8859-1"),
])
def test_a_notice_is_read_whatever_its_label(encoding, content_type):
    body = "Ваше письмо не может быть доставлено.\n\nПолучатель: ivan.petrov@example.ru\n" \
           "Причина: почтовый ящик переполнен.\n"
    r = dsnparse.parse(_notice(body.encode(encoding), content_type))
    assert r.kind == "bounce" and r.subject == "Письмо не доставлено"
    assert [(v.final_recipient, v.reason, v.status) for v in r.verdicts] == \
        [("ivan.petrov@example.ru", "mailbox_full", "5.2.2")]


def test_a_lone_surrogate_beside_escaped_octets_is_replaced_not_raised():
    # found by benchmarks/fuzz.py (1,000,000 cases): a decoder (UTF-7 "+2HU-") can leave a
    # lone surrogate that is no escaped octet beside octets the bytes parser escaped; the
    # re-decoding of the octets raised UnicodeEncodeError and the message was lost
    from dsnparse.load import fix_8bit, unfold

    assert b"+2HU-".decode("utf-7") == "\ud875"
    assert fix_8bit("a\udcc3\udca9b\ud875c") == "a\u00e9b\ufffdc"
    assert unfold("550 5.1.1\n \udcc3\udca9 \ud875") == "550 5.1.1 \u00e9 \ufffd"

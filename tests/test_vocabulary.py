"""rules/lang/*.yaml: the multilingual vocabulary, its validation, its placeholders, the shared
reason pack it makes, recognition of notices in each language (samples/generic/unknown-mta)
and ordinary mail in each language that must not be taken for a bounce."""
from __future__ import annotations

import json
from email.header import Header

import pytest

import dsnparse
from conftest import SAMPLES
from dsnparse import rules, vocabulary
from dsnparse.errors import RuleError
from dsnparse.options import Options

LANGS = ("en", "fr", "de", "es", "it", "pt", "nl", "pl", "cs", "sv", "ru", "ja", "zh-Hans",
         "zh-Hant", "ko", "he", "fa", "ar", "hi", "da", "nb", "fi", "tr", "hu", "ro", "el", "uk", "id")
SHIPPED = vocabulary.load_vocabulary((rules.rules_dir(),))


# ----------------------------------------------------------------- the shipped files

def test_every_language_has_its_file_and_sections():
    assert set(LANGS) <= set(SHIPPED.languages)
    for lang in LANGS:
        have = {s for s in vocabulary.SECTIONS if any(l == lang for l, _ in SHIPPED.sections[s])}
        assert {"subject", "body", "labels"} <= have, (lang, have)
        if lang != "en":  # English reason phrases live in rules/standard/text.yaml
            reasons = {r for r, ps in SHIPPED.reasons.items() if any(l == lang for l, _ in ps)}
            assert {"user_unknown", "mailbox_full", "host_unknown", "suspend"} <= reasons, (lang, reasons)


def test_reason_pack_comes_after_the_english_rules():
    packs = rules.load_packs()
    ids = [p.id for p in packs]
    lang = next(p for p in packs if p.id == vocabulary.REASON_PACK_ID)
    assert lang.shared and ids.index("standard/text") < ids.index(lang.id)
    # text rules apply vendor first, shared packs in order: text.yaml before lang/reasons
    order = [p.id for p in rules.text_rule_packs(packs, ("mx.example.org",), None, 1.0)]
    assert order.index("standard/text") < order.index(lang.id)
    # one rule per reason, in the documented precedence
    got = [r.reason for r in lang.text_rules]
    assert got == [r for r in vocabulary.REASON_ORDER if r in got]


def test_phrases_are_literal_and_prefiltered():
    assert vocabulary.phrase_pattern("n'a pas  pu (x)") == r"n['’]a\s+pas\s+pu\s+\(x\)"
    import regex
    pat = regex.compile(vocabulary.phrase_pattern("n'a pas pu être remis"), regex.I)
    assert pat.search("Votre message N’A PAS\n pu être remis")
    lang = next(p for p in rules.load_packs() if p.id == vocabulary.REASON_PACK_ID)
    for r in lang.text_rules:  # every phrase has a literal to look for
        assert r.pattern.needles and all(n for _, n in r.pattern.branches or ()), r.id


# ----------------------------------------------------------------- validation

def _user_dir(tmp_path, name, text):
    d = tmp_path / "rules"
    (d / "lang").mkdir(parents=True)
    (d / "lang" / name).write_text(text, encoding="utf-8")
    return d


@pytest.mark.parametrize("text, key, message", [
    ("language: xx\nsubjects: [a b c]\n", "subjects", "unknown key"),
    ("language: xx\nreasons:\n  user_unkown: [benutzer weg]\n", "reasons.user_unkown", "unknown reason"),
    ("language: xx\nreasons:\n  delivered: [zugestellt worden]\n", "reasons.delivered", "not one a text states"),
    ("language: xx\nbody: [de la]\n", "body[0]", "prefilter"),
    ("language: xx\nbody: abc def\n", "body", "expected a list"),
    ("language: xx\nlabels: [{a: b}]\n", "labels[0]", "non-empty phrase"),
    ("subject: [abc]\n", "language", "language code"),
    ("language: xx\nbody: [abc\n", None, "bad YAML"),
])
def test_a_broken_language_file_is_rejected_naming_file_and_key(tmp_path, text, key, message):
    d = _user_dir(tmp_path, "xx.yaml", text)
    with pytest.raises(RuleError) as e:
        vocabulary.load_vocabulary((d, rules.rules_dir()))
    assert "xx.yaml" in str(e.value) and message in str(e.value)
    if key:
        assert f"'{key}'" in str(e.value)
    rules.load_packs.cache_clear()
    with pytest.raises(RuleError):  # a run with that directory fails the same way
        rules.load_packs((str(d),))


def test_an_unknown_placeholder_names_pack_rule_and_field(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "x.yaml").write_text("detect:\n  any:\n    - body: '{{lang.bodies}}'\nrecipients:\n"
                              "  - id: r\n    pattern: '(?P<recipient>\\S+@\\S+)'\n")
    with pytest.raises(RuleError) as e:
        rules.load_pack(d / "x.yaml")
    assert "x.yaml" in str(e.value) and "detect.any[0]" in str(e.value) \
        and "'body'" in str(e.value) and "{{lang.bodies}}" in str(e.value)


def test_placeholders_expand_to_a_split_alternation_or_a_group():
    whole = SHIPPED.expand("{{lang.subject}}", "p")
    assert not whole.startswith("(?:") and whole.count("|") + 1 == len(SHIPPED.sections["subject"])
    assert SHIPPED.expand("abc|{{lang.body}}", "p").startswith("abc|") and \
        "(?:" not in SHIPPED.expand("abc|{{lang.body}}", "p")[:8]
    inner = SHIPPED.expand("^x{{lang.labels}}:", "p")
    assert inner.startswith("^x(?:") and inner.endswith("):")


def test_a_user_language_file_replaces_the_shipped_one_and_the_cache_follows(tmp_path):
    d = _user_dir(tmp_path, "de.yaml", "language: de\nsubject: [Postrückläufer]\n"
                                       "body: [Sendung war unzustellbar]\nlabels: [Postempfänger]\n")
    v = vocabulary.load_vocabulary((d, rules.rules_dir()))
    assert [p for l, p in v.sections["subject"] if l == "de"] == ["Postrückläufer"]
    assert "Empfänger" not in [p for l, p in v.sections["labels"] if l == "de"]
    rules.load_packs.cache_clear()
    listing = [(d, list(rules.pack_files(d))), (rules.rules_dir(), [])]
    key = rules._cache_key(listing)
    (d / "lang" / "de.yaml").write_text("language: de\nsubject: [Rückläufer der Post]\n", encoding="utf-8")
    assert rules._cache_key(listing) != key
    assert not any(pid.startswith("lang/") for pid, _ in rules.pack_files(rules.rules_dir()))


# ----------------------------------------------------------------- recognition per language

# the invented samples of samples/generic/unknown-mta/ by language (see their expected files)
SAMPLE_OF = {"fr": "02", "de": "03", "es": "04", "it": "05", "pt": "06", "nl": "07", "pl": "08",
             "cs": "09", "sv": "10", "ru": "11", "ja": "13", "zh-Hans": "15", "zh-Hant": "16",
             "ko": "17", "he": "26", "fa": "27", "ar": "28", "hi": "29", "da": "31", "nb": "32",
             "fi": "33", "tr": "34", "hu": "35", "ro": "36", "el": "37", "uk": "38", "id": "39"}


@pytest.mark.parametrize("lang", sorted(SAMPLE_OF))
def test_a_notice_in_each_language_is_recognised_with_recipient_and_reason(lang):
    path = SAMPLES / "generic" / "unknown-mta" / f"{SAMPLE_OF[lang]}.eml"
    want = json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))["verdicts"]
    report = dsnparse.parse(path.read_bytes())
    assert report.kind == "bounce" and report.format == "generic/unknown-mta"
    assert [(v.final_recipient, v.reason) for v in report.verdicts] == \
        [(w["final_recipient"], w["reason"]) for w in want]
    # the label and the reason phrase of that language did it (not an English rule)
    rule = report.verdicts[0].rule
    assert "#labelled" in rule and ("lang/reasons#" in rule or "standard/text#" in rule)


def test_without_the_vocabulary_those_notices_are_not_recognised(tmp_path):
    # the same rules with empty language files: the notices in other languages fall through
    d = tmp_path / "rules"
    (d / "lang").mkdir(parents=True)
    for lang in LANGS:
        if lang != "en":
            (d / "lang" / f"{lang}.yaml").write_text(f"language: {lang}\n", encoding="utf-8")
    langs = ("ja", "zh-Hans", "zh-Hant", "ko", "ru", "pl", "cs", "sv",
             "da", "nb", "fi", "tr", "hu", "ro", "el", "uk", "id")
    recognised = []
    for lang in langs:
        path = SAMPLES / "generic" / "unknown-mta" / f"{SAMPLE_OF[lang]}.eml"
        if dsnparse.parse(path.read_bytes(), Options(rules=(str(d),))).kind == "bounce":
            recognised.append(lang)
    assert recognised == []


def test_explain_lists_the_evidence(capsys):
    from dsnparse.cli import main
    assert main(["explain", str(SAMPLES / "generic" / "unknown-mta" / "13.eml")]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "pack generic/unknown-mta: recognised" in x)
    assert "evidence:" in line
    for cond in ("detect.all body", "detect.any header:from", "detect.any header:return-path",
                 "detect.any header:subject"):
        assert cond in line, cond
    assert "配信エラー" in line and "届きませんでした" in line


# ----------------------------------------------------------------- ordinary mail in each language

def _mail(lang, charset, subject, body, *, frm, headers=()):
    head = [f"From: {frm}", "To: someone@example.net", f"Subject: {Header(subject, charset).encode()}",
            "Date: Mon, 02 Mar 2026 10:00:00 +0000", f"Message-ID: <{lang}.{abs(hash(subject))}@example.org>",
            "MIME-Version: 1.0", f"Content-Type: text/plain; charset={charset}",
            "Content-Transfer-Encoding: 8bit", *headers]
    return ("\n".join(head) + "\n\n").encode() + body.encode(charset)


OOO = ("Auto-Submitted: auto-replied",)
NEWS = ("List-Unsubscribe: <mailto:unsubscribe@news.example.org>", "Precedence: bulk")

ORDINARY = {
    "en": ("utf-8", [
        ("Your order has shipped", "Good news! Your parcel was handed to the carrier and will be delivered on Friday.\nQuestions? Write to help@shop.example.org\n", NEWS),
        ("Re: lunch", "Hi Sam,\nmy earlier mail to Tom could not be delivered, so please tell him lunch is at noon.\nAnna\n", ()),
        ("Out of office", "I am out of the office until Monday and will reply when I am back.\nUrgent: desk@example.org\n", OOO)]),
    "fr": ("iso-8859-1", [
        ("Votre colis est en route", "Votre commande a été expédiée. Livraison prévue jeudi.\nService client : client@boutique.example.fr\n", NEWS),
        ("Re: dîner samedi", "Coucou,\nmon message à Paul n'a pas été remis, tu peux lui dire pour samedi ?\nBises\n", ()),
        ("Réponse automatique : absent", "Je suis absente du bureau jusqu'au 10 mars. En cas d'urgence : accueil@exemple.fr\n", OOO)]),
    "de": ("iso-8859-15", [
        ("Ihr Paket konnte nicht zugestellt werden", "Guten Tag,\nIhr Paket konnte heute nicht zugestellt werden. Empfänger: Max Mustermann\nNeuer Zustellversuch morgen. Fragen: service@paket.example.de\n", NEWS),
        ("Re: Grillabend", "Hallo Jonas,\nmeine Mail an Lena kam unzustellbar zurück. Sag ihr bitte Bescheid.\nGruß, Tim\n", ()),
        ("Abwesenheitsnotiz", "Vielen Dank für Ihre Nachricht. Ich bin bis 15.03. nicht im Büro.\nVertretung: vertretung@beispiel.de\n", OOO)]),
    "es": ("iso-8859-1", [
        ("Ofertas de la semana", "Descubre nuestras ofertas. Entrega gratuita en 24 horas.\nContacto: ayuda@tienda.example.es\n", NEWS),
        ("Re: cumpleaños", "Hola Marta,\nno se pudo entregar mi mensaje a Luis, ¿le avisas tú?\nUn abrazo\n", ()),
        ("Respuesta automática: fuera de la oficina", "Estoy fuera de la oficina hasta el lunes. Para urgencias: recepcion@ejemplo.es\n", OOO)]),
    "it": ("iso-8859-1", [
        ("La tua newsletter", "Novità della settimana: consegna gratuita su tutti gli ordini.\nAssistenza: aiuto@negozio.example.it\n", NEWS),
        ("Re: cena", "Ciao Luca,\nil mio messaggio a Sara non è stato consegnato, glielo dici tu?\nA presto\n", ()),
        ("Risposta automatica: fuori sede", "Sono fuori sede fino al 20 marzo. Per urgenze: segreteria@esempio.it\n", OOO)]),
    "pt": ("iso-8859-1", [
        ("Seu pedido foi enviado", "Seu pedido saiu para entrega e chega amanhã.\nAtendimento: sac@loja.example.com.br\n", NEWS),
        ("Re: churrasco", "Oi Pedro,\nnão foi possível entregar meu e-mail para o Rafael, avisa ele?\nAbraço\n", ()),
        ("Resposta automática: ausente", "Estou de férias até dia 12. Em caso de urgência: contato@exemplo.com.br\n", OOO)]),
    "nl": ("utf-8", [
        ("Uw bestelling is onderweg", "Uw pakket wordt morgen bezorgd.\nVragen? klantenservice@winkel.example.nl\n", NEWS),
        ("Re: verjaardag", "Hoi Eva,\nmijn mail aan Bram kon niet worden afgeleverd, wil jij het hem zeggen?\nGroetjes\n", ()),
        ("Automatisch antwoord: afwezig", "Ik ben afwezig tot 9 maart. Voor dringende zaken: balie@voorbeeld.nl\n", OOO)]),
    "pl": ("iso-8859-2", [
        ("Twoja przesyłka jest w drodze", "Paczka zostanie dostarczona jutro.\nPomoc: pomoc@sklep.example.pl\n", NEWS),
        ("Re: spotkanie", "Cześć Ania,\nmoja wiadomość do Marka nie została dostarczona, przekażesz mu?\nPozdrawiam\n", ()),
        ("Odpowiedź automatyczna: nieobecność", "Jestem nieobecny do 16 marca. W pilnych sprawach: biuro@przyklad.pl\n", OOO)]),
    "cs": ("iso-8859-2", [
        ("Vaše objednávka je na cestě", "Zásilka bude doručena zítra.\nPodpora: podpora@obchod.example.cz\n", NEWS),
        ("Re: oslava", "Ahoj Petře,\nmoje zpráva pro Janu nebyla doručena, řekneš jí to?\nMěj se\n", ()),
        ("Automatická odpověď: mimo kancelář", "Do 11. března jsem mimo kancelář. V naléhavých případech: recepce@priklad.cz\n", OOO)]),
    "sv": ("iso-8859-1", [
        ("Din beställning är på väg", "Paketet levereras i morgon.\nKundtjänst: kundtjanst@butik.example.se\n", NEWS),
        ("Sv: middag", "Hej Lisa,\nmitt mejl till Oskar kunde inte levereras, kan du säga till honom?\nKram\n", ()),
        ("Automatiskt svar: ledig", "Jag är ledig till den 14 mars. Vid brådskande ärenden: vaxel@exempel.se\n", OOO)]),
    "ru": ("koi8-r", [
        ("Ваш заказ отправлен", "Посылка будет доставлена завтра.\nПоддержка: help@magazin.example.ru\n", NEWS),
        ("Re: встреча", "Привет, Саша!\nМоё письмо Ивану не доставлено, передай ему, пожалуйста.\nПока\n", ()),
        ("Автоматический ответ: нет на месте", "Я в отпуске до 10 марта. По срочным вопросам: office@primer.ru\n", OOO)]),
    "ja": ("iso-2022-jp", [
        ("【ショップ】ご注文の商品を発送しました", "ご注文の商品は明日お届け予定です。\n配信停止はこちら: support@shop.example.jp\n", NEWS),
        ("Re: 打ち合わせ", "山田さん\n先ほどのメールが鈴木さんに届かなかったようなので、伝えていただけますか。\n田中\n", ()),
        ("自動応答: 不在のお知らせ", "3月10日まで不在にしております。お急ぎの方は office@rei.jp までご連絡ください。\n", OOO)]),
    "zh-Hans": ("gb18030", [
        ("您的订单已发货", "您的包裹将于明天送达。\n客服邮箱：kefu@shop.example.cn\n", NEWS),
        ("回复：周末聚餐", "小王，\n我给老李的邮件好像没收到，你帮我跟他说一声吧。\n谢谢\n", ()),
        ("自动回复：休假中", "我正在休假，3月10日返回。紧急事务请联系 office@shili.cn。\n", OOO)]),
    "zh-Hant": ("big5", [
        ("您的訂單已出貨", "您的包裹將於明天送達。\n客服信箱：service@shop.example.com.tw\n", NEWS),
        ("回覆：週末聚餐", "小林，\n我寄給阿明的信好像沒收到，你幫我跟他說一聲。\n謝謝\n", ()),
        ("自動回覆：休假中", "我正在休假，3月10日返回。緊急事務請聯絡 office@lizi.com.tw。\n", OOO)]),
    "ko": ("euc-kr", [
        ("주문하신 상품이 발송되었습니다", "상품은 내일 배송될 예정입니다.\n고객센터: help@shop.example.co.kr\n", NEWS),
        ("Re: 저녁 약속", "지연 씨,\n민수 씨에게 보낸 메일이 안 갔나 봐요. 대신 전해 주실래요?\n감사합니다\n", ()),
        ("자동 응답: 부재중", "3월 10일까지 부재중입니다. 급한 용무는 office@yesi.co.kr 로 연락 주세요.\n", OOO)]),
    "he": ("windows-1255", [
        ("ההזמנה שלך נשלחה", "החבילה שלך נמסרה לשליח ותגיע מחר.\nשאלות: service@shop.example.co.il\n", NEWS),
        ("תשובה: ארוחת ערב", "היי דנה,\nההודעה שלי ליוסי לא נמסרה, תוכלי להגיד לו?\nתודה\n", ()),
        ("מענה אוטומטי: מחוץ למשרד", "אני מחוץ למשרד עד 10 במרץ. בדחיפות: office@dugma.co.il\n", OOO)]),
    "fa": ("utf-8", [
        ("سفارش شما ارسال شد", "بسته شما فردا تحویل داده می‌شود.\nپشتیبانی: help@shop.example.ir\n", NEWS),
        ("پاسخ: شام جمعه", "سلام مریم،\nپیام من به علی تحویل داده نشد، لطفاً به او بگو.\nممنون\n", ()),
        ("پاسخ خودکار: خارج از دفتر", "تا ۱۰ اسفند در دفتر نیستم. موارد فوری: office@nemooneh.ir\n", OOO)]),
    "ar": ("windows-1256", [
        ("تم شحن طلبك", "سيتم تسليم طلبك غدا.\nخدمة العملاء: help@shop.example.sa\n", NEWS),
        ("رد: العشاء", "مرحبا سارة،\nلم يتم تسليم رسالتي إلى أحمد، هل يمكنك إخباره؟\nشكرا\n", ()),
        ("رد تلقائي: خارج المكتب", "أنا خارج المكتب حتى 10 مارس. للأمور العاجلة: office@mithal.sa\n", OOO)]),
    "hi": ("utf-8", [
        ("आपका ऑर्डर भेज दिया गया है", "आपका पार्सल कल वितरित किया जाएगा।\nसहायता: help@shop.example.in\n", NEWS),
        ("जवाब: रात का खाना", "नमस्ते अनु,\nमेरा संदेश रवि को वितरित नहीं हो सका, कृपया उसे बता देना।\nधन्यवाद\n", ()),
        ("स्वचालित उत्तर: कार्यालय से बाहर", "मैं 10 मार्च तक कार्यालय से बाहर हूँ। तत्काल कार्य: office@udaharan.in\n", OOO)]),
    # a carrier's "could not be delivered" (the languages' own bounce phrase and recipient
    # label, without an address), a person's "my mail did not arrive", an out-of-office reply
    "da": ("iso-8859-1", [
        ("Din pakke kunne ikke leveres", "Hej,\nvi forsøgte at levere din pakke i dag, men den kunne ikke leveres. Modtager: Lars Nielsen\nNyt leveringsforsøg i morgen. Spørgsmål: kundeservice@pakke.example.dk\n", NEWS),
        ("Sv: frokost", "Hej Mette,\nmin mail til Ole kunne ikke leveres, kan du sige det til ham?\nHilsen Lars\n", ()),
        ("Automatisk svar: fraværende", "Tak for din mail. Jeg er fraværende indtil den 16. marts.\nKontakt venligst kontoret@eksempel.dk\n", OOO)]),
    "nb": ("iso-8859-1", [
        ("Pakken din kunne ikke leveres", "Hei,\nvi prøvde å levere pakken din i dag, men den kunne ikke leveres. Mottaker: Ingrid Hansen\nNytt leveringsforsøk i morgen. Spørsmål: kundeservice@pakke.example.no\n", NEWS),
        ("Sv: middag", "Hei Kari,\nmeldingen min til Per kunne ikke leveres, kan du si ifra til ham?\nHilsen Ola\n", ()),
        ("Automatisk svar: fraværende", "Takk for e-posten. Jeg er på ferie til 16. mars.\nHaster det: sentralbord@eksempel.no\n", OOO)]),
    "fi": ("iso-8859-1", [
        ("Pakettia ei voitu toimittaa", "Hei,\npakettiasi ei voitu toimittaa tänään. Vastaanottaja: Mikko Virtanen\nUusi toimitusyritys huomenna. Asiakaspalvelu: asiakaspalvelu@paketti.example.fi\n", NEWS),
        ("Vs: lounas", "Hei Sari,\nviestiäni Pekalle ei voitu toimittaa, voisitko kertoa hänelle?\nTerveisin Mikko\n", ()),
        ("Automaattinen vastaus: lomalla", "Kiitos viestistäsi. Olen lomalla 16.3. asti.\nKiireellisissä asioissa: vaihde@esimerkki.fi\n", OOO)]),
    "tr": ("iso-8859-9", [
        ("Kargonuz teslim edilemedi", "Merhaba,\nkargonuz bugün teslim edilemedi. Alıcı: Mehmet Yılmaz\nYarın tekrar denenecek. Sorular: destek@kargo.example.com.tr\n", NEWS),
        ("YNT: akşam yemeği", "Selam Ayşe,\nAhmet'e gönderdiğim e-posta teslim edilemedi, ona söyler misin?\nGörüşürüz\n", ()),
        ("Otomatik yanıt: ofis dışında", "Mesajınız için teşekkürler. 16 Mart'a kadar ofis dışındayım.\nAcil durumlar için: sekreterlik@ornek.com.tr\n", OOO)]),
    "hu": ("iso-8859-2", [
        ("A csomagját nem sikerült kézbesíteni", "Tisztelt Ügyfelünk!\nA csomagját ma nem sikerült kézbesíteni. Címzett: Kovács Anna\nHolnap újra megpróbáljuk. Kérdés: ugyfelszolgalat@csomag.example.hu\n", NEWS),
        ("Válasz: vacsora", "Szia Kata,\naz e-mailem Péternek nem kézbesíthető, megmondanád neki?\nÜdv, Zsófi\n", ()),
        ("Automatikus válasz: házon kívül", "Köszönöm levelét. Március 16-ig szabadságon vagyok.\nSürgős ügyben: titkarsag@pelda.hu\n", OOO)]),
    "ro": ("iso-8859-2", [
        ("Coletul nu a putut fi livrat", "Bună ziua,\ncoletul dumneavoastră nu a putut fi livrat astăzi. Destinatar: Andrei Popescu\nVom încerca din nou mâine. Întrebări: suport@curier.example.ro\n", NEWS),
        ("Re: cina", "Salut Ioana,\nmesajul meu către Mihai nu a putut fi livrat, îi spui tu?\nPe curând\n", ()),
        ("Răspuns automat: în afara biroului", "Vă mulţumesc pentru mesaj. Sunt în concediu până pe 16 martie.\nPentru urgenţe: secretariat@exemplu.ro\n", OOO)]),
    "el": ("iso-8859-7", [
        ("Αποτυχία παράδοσης δέματος", "Αγαπητέ πελάτη,\nη παράδοση απέτυχε σήμερα: το δέμα σας δεν παραδόθηκε. Παραλήπτης: Νίκος Παπαδόπουλος\nΝέα προσπάθεια αύριο. Ερωτήσεις: info@courier.example.gr\n", NEWS),
        ("ΑΠ: δείπνο", "Γεια σου Μαρία,\nτο μήνυμά μου στον Γιώργο δεν παραδόθηκε, μπορείς να του το πεις;\nΦιλιά\n", ()),
        ("Αυτόματη απάντηση: εκτός γραφείου", "Ευχαριστώ για το μήνυμά σας. Θα είμαι εκτός γραφείου έως τις 16 Μαρτίου.\nΓια επείγοντα: grammateia@paradeigma.gr\n", OOO)]),
    "uk": ("koi8-u", [
        ("Посилку не вдалося доставити", "Вітаємо!\nВашу посилку сьогодні не вдалося доставити. Одержувач: Оксана Коваленко\nПовторна спроба завтра. Питання: support@posylka.example.ua\n", NEWS),
        ("Re: зустріч", "Привіт, Олено!\nМій лист Андрію не доставлено, передай йому, будь ласка.\nДо зустрічі\n", ()),
        ("Автоматична відповідь: немає на місці", "Дякую за лист. Я у відпустці до 16 березня.\nУ термінових справах: office@pryklad.ua\n", OOO)]),
    "id": ("utf-8", [
        ("Paket Anda tidak dapat dikirim", "Halo,\npaket Anda hari ini tidak dapat dikirim ke alamat tujuan. Penerima: Budi Santoso\nKami akan mencoba lagi besok. Bantuan: cs@kurir.example.co.id\n", NEWS),
        ("Balas: makan malam", "Hai Rina,\nemail saya ke Andi tidak terkirim, tolong sampaikan ya.\nTerima kasih\n", ()),
        ("Balasan otomatis: di luar kantor", "Terima kasih atas email Anda. Saya cuti sampai 16 Maret.\nUntuk hal mendesak: sekretariat@contoh.co.id\n", OOO)]),
}


@pytest.mark.parametrize("lang", LANGS)
def test_ordinary_mail_in_each_language_is_not_a_bounce(lang):
    charset, mails = ORDINARY[lang]
    senders = ("Shop <news@shop.example.org>", "Anna <anna@example.org>", "Office <office@example.org>")
    for (subject, body, headers), frm in zip(mails, senders):
        report = dsnparse.parse(_mail(lang, charset, subject, body, frm=frm, headers=headers))
        assert report.kind in ("not_bounce", "auto_reply"), (lang, subject, report.kind, report.format)
        if headers is OOO:
            assert report.kind == "auto_reply"


# ----------------------------------------------------------------- cost and linearity

def _unknown_mta():
    return next(p for p in rules.load_packs() if p.id == "generic/unknown-mta")


def test_branch_selection_gives_the_whole_patterns_match():
    # a condition with a long phrase list runs only the branches whose literals occur: the
    # same match as the whole alternation, on every sample and on text without any phrase
    pack = _unknown_mta()
    conds = [c for c in pack.detect_all + pack.detect_any if c.pattern.branches
             and len(c.pattern.branches) > rules._MANY_BRANCHES]
    assert {c.target for c in conds} == {"body", "header"}
    texts = [p.read_bytes().decode("utf-8", "replace") for p in sorted(SAMPLES.rglob("*.eml"))]
    texts += ["nothing to see here", "Votre message n’a pas\npu être remis", "配信エラー: 件名"]
    for c in conds:
        whole = c.pattern.compiled
        for t in texts:
            which = rules.present_branches(c.pattern, t.casefold())
            got = c.pattern.search_branches(t, 1.0, which) if which else None
            want = whole.search(t)
            assert (got and got.span()) == (want and want.span()), (c.name, t[:40])


@pytest.mark.parametrize("hostile", [
    "收件人：" * 20000,
    "Empfänger: " + "a" * 200000,
    "Destinataire : x@" + "a." * 100000,
    ("Recipient:" + " " * 500 + "\n") * 2000,
])
def test_the_labelled_rule_is_linear_on_hostile_text(hostile):
    import time
    rule = next(r for r in _unknown_mta().recipients if r.id == "labelled-any-language")
    t = time.process_time()
    rule.pattern.finditer(hostile, 5.0)
    assert time.process_time() - t < 2.0


# ----------------------------------------------------------------- reasons in each language

# a remote server's refusal as mail systems word it in each language (the diagnostic of an
# RFC 6533 report, UTF-8): the reason comes from lang/reasons, the status from the field
DIAGNOSTICS = [
    ("he", "550 תיבת הדואר של הנמען מלאה", "mailbox_full"),
    ("fa", "550 کاربر وجود ندارد", "user_unknown"),
    ("ar", "550 المستخدم غير موجود", "user_unknown"),
    ("hi", "550 खाता निलंबित कर दिया गया है", "suspend"),
    ("de", "550 Sie haben nicht die erforderlichen Berechtigungen, um Nachrichten zu posten", "rejected"),
    ("fr", "550 Adresse de messagerie introuvable", "user_unknown"),
    ("fr", "552 Boîte de réception pleine", "mailbox_full"),
    ("de", "550 Postfach existiert nicht", "user_unknown"),
    ("de", "550 Konto ist gesperrt", "suspend"),
    ("es", "550 La cuenta de correo no existe", "user_unknown"),
    ("it", "552 Casella di posta piena", "mailbox_full"),
    ("pt", "550 Usuário inexistente", "user_unknown"),
    ("nl", "552 Postvak is vol", "mailbox_full"),
    ("pl", "550 Nie ma takiego konta", "user_unknown"),
    ("cs", "550 Schránka neexistuje", "user_unknown"),
    ("sv", "550 Okänd mottagare", "user_unknown"),
    ("ru", "550 Почтовый ящик переполнен", "mailbox_full"),
    ("ru", "550 Такого ящика нет", "user_unknown"),
    ("ja", "550 宛先のアドレスが見つかりません", "user_unknown"),
    ("ja", "552 メールボックスの容量を超えています", "mailbox_full"),
    ("zh-Hans", "550 收件人地址不存在", "user_unknown"),
    ("zh-Hans", "554 邮件被判定为垃圾邮件", "spam_detected"),
    ("zh-Hant", "550 信箱已滿", "mailbox_full"),
    ("ko", "550 존재하지 않는 사용자입니다", "user_unknown"),
    ("ko", "550 휴면 계정입니다", "suspend"),
    # a mailing list refusing a non-member's post (Sisimai: rejected)
    ("ja", "550 このグループに投稿する権限がありません", "rejected"),
    ("es", "550 No tienes permiso para publicar en este grupo", "rejected"),
    ("de", "550 Sie haben keine Berechtigung zum Posten in dieser Gruppe", "rejected"),
    # one per reason in each language added in issue 12 (second round)
    ("da", "550 Brugeren findes ikke", "user_unknown"),
    ("da", "552 Postkassen er fuld", "mailbox_full"),
    ("da", "552 Meddelelsen er for stor", "mesg_too_big"),
    ("da", "550 Domænet findes ikke", "host_unknown"),
    ("da", "550 Kontoen er deaktiveret", "suspend"),
    ("nb", "550 Ukjent mottaker", "user_unknown"),
    ("nb", "552 Innboksen er full", "mailbox_full"),
    ("nb", "552 Meldingen er for stor", "mesg_too_big"),
    ("nb", "550 Ukjent domene", "host_unknown"),
    ("nb", "550 Kontoen er stengt", "suspend"),
    ("fi", "550 Käyttäjää ei löydy", "user_unknown"),
    ("fi", "552 Postilaatikko on täynnä", "mailbox_full"),
    ("fi", "552 Viesti on liian suuri", "mesg_too_big"),
    ("fi", "550 Tuntematon toimialue", "host_unknown"),
    ("fi", "550 Tili on suljettu", "suspend"),
    ("tr", "550 Kullanıcı bulunamadı", "user_unknown"),
    ("tr", "552 Posta kutusu dolu", "mailbox_full"),
    ("tr", "552 İleti çok büyük", "mesg_too_big"),
    ("tr", "550 Alan adı bulunamadı", "host_unknown"),
    ("tr", "550 Hesap askıya alındı", "suspend"),
    ("hu", "550 Ismeretlen címzett", "user_unknown"),
    ("hu", "552 A postafiók megtelt", "mailbox_full"),
    ("hu", "552 Az üzenet túl nagy", "mesg_too_big"),
    ("hu", "550 Ismeretlen tartomány", "host_unknown"),
    ("hu", "550 A fiók le van tiltva", "suspend"),
    ("ro", "550 Utilizator necunoscut", "user_unknown"),
    ("ro", "552 Căsuța poștală este plină", "mailbox_full"),
    ("ro", "552 Cutia poştală este plină", "mailbox_full"),
    ("ro", "552 Mesajul este prea mare", "mesg_too_big"),
    ("ro", "550 Domeniul nu există", "host_unknown"),
    ("ro", "550 Contul a fost suspendat", "suspend"),
    ("el", "550 Άγνωστος χρήστης", "user_unknown"),
    ("el", "552 Το γραμματοκιβώτιο είναι πλήρες", "mailbox_full"),
    ("el", "552 Το μήνυμα είναι πολύ μεγάλο", "mesg_too_big"),
    ("el", "550 Ο τομέας δεν υπάρχει", "host_unknown"),
    ("el", "550 Ο λογαριασμός έχει απενεργοποιηθεί", "suspend"),
    ("uk", "550 Користувача не знайдено", "user_unknown"),
    ("uk", "552 Поштова скринька переповнена", "mailbox_full"),
    ("uk", "552 Повідомлення занадто велике", "mesg_too_big"),
    ("uk", "550 Домен не існує", "host_unknown"),
    ("uk", "550 Обліковий запис заблоковано", "suspend"),
    ("id", "550 Pengguna tidak ditemukan", "user_unknown"),
    ("id", "552 Kotak surat penuh", "mailbox_full"),
    ("id", "552 Pesan terlalu besar", "mesg_too_big"),
    ("id", "550 Domain tidak ditemukan", "host_unknown"),
    ("id", "550 Akun ditangguhkan", "suspend"),
]


def _global_dsn(diagnostic: str) -> bytes:
    return ("From: MAILER-DAEMON@mx.example.org\nTo: sender@example.com\n"
            "Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
            "--b\nContent-Type: text/plain; charset=us-ascii\n\nDelivery failed.\n\n"
            "--b\nContent-Type: message/global-delivery-status\n\n"
            "Reporting-MTA: dns; mx.example.org\n\n"
            "Final-Recipient: rfc822; someone@example.net\nAction: failed\nStatus: 5.0.0\n"
            f"Diagnostic-Code: smtp; {diagnostic}\n\n--b--\n").encode("utf-8")


@pytest.mark.parametrize("lang, diagnostic, reason", DIAGNOSTICS, ids=[f"{d[0]}-{d[2]}" for d in DIAGNOSTICS])
def test_a_diagnostic_in_each_language_gets_its_reason(lang, diagnostic, reason):
    v, = dsnparse.parse(_global_dsn(diagnostic)).verdicts
    assert v.reason == reason and v.status == "5.0.0"
    assert v.rule.startswith("rfc3464+") and ("lang/reasons#" in v.rule or "standard/text#" in v.rule)


@pytest.mark.parametrize("diagnostic, reason", [
    ("550 ΆΓΝΩΣΤΟΣ ΧΡΉΣΤΗΣ", "user_unknown"),        # Greek capitals, final sigma as "Σ"
    ("552 ΤΟ ΓΡΑΜΜΑΤΟΚΙΒΏΤΙΟ ΕΊΝΑΙ ΠΛΉΡΕΣ", "mailbox_full"),
    ("550 ΣΦΆΛΜΑ ΔΙΑΚΟΜΙΣΤΉ", None),                     # "server error": no phrase of lang/reasons
])
def test_greek_phrases_match_in_capitals(diagnostic, reason):
    # the prefilter's Greek needles are case-folded like the text (rulepacks.literals._fold_safe)
    v, = dsnparse.parse(_global_dsn(diagnostic)).verdicts
    assert (v.reason if "lang/reasons#" in v.rule else None) == reason


def test_an_address_ends_at_cjk_punctuation():
    assert rules.clean_address("收件人：sun.li@example.cn") == "sun.li@example.cn"
    assert rules.clean_address("li.zhe@example.cn（李喆）") == "li.zhe@example.cn"
    assert rules.clean_address("宛先：taro@example.jp。") == "taro@example.jp"
    assert rules.clean_address("用户@例子.广告") == "用户@例子.广告"  # RFC 6531 stays whole


@pytest.mark.parametrize("subject, body, want", [
    ("Unzustellbar", "Ihre Nachricht konnte nicht zugestellt werden.\n\n"
     "Empfänger: Max Mustermann <max@beispiel.de>\nGrund: Postfach voll\n", ("max@beispiel.de", "mailbox_full")),
    ("邮件投递失败", "您发送的邮件无法投递。\n\n收件人：孙丽 <sun.li@shili.cn>\n原因：用户不存在\n",
     ("sun.li@shili.cn", "user_unknown")),
    ("配信エラー", "配信できませんでした。\n\n宛先: \"山田 太郎\" <taro@rei.jp>\n理由: 宛先不明\n",
     ("taro@rei.jp", "user_unknown")),
])
def test_a_label_then_a_display_name_then_the_address(subject, body, want):
    data = (f"From: MAILER-DAEMON@mx.example.org\nTo: a@example.com\n"
            f"Subject: {Header(subject, 'utf-8').encode()}\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + body).encode()
    report = dsnparse.parse(data)
    assert report.kind == "bounce"
    assert [(v.final_recipient, v.reason) for v in report.verdicts] == [want]


@pytest.mark.parametrize("lang, charset, subject, body", [
    ("en", "utf-8", "Delivery attempt failed - your parcel",
     "We tried to deliver your parcel today but nobody was home.\nIt will be returned to sender "
     "after 7 days.\n\nQuestions?\n\nsupport@parcels.example.com\n"),
    ("fr", "iso-8859-1", "Votre colis n'a pas pu être livré",
     "Votre colis a été retourné à l'expéditeur.\n\nContact :\n\nclient@colis.example.fr\n"),
    ("de", "iso-8859-1", "Sendung unzustellbar",
     "Ihre Sendung war unzustellbar und wurde an den Absender zurückgeschickt.\n\n"
     "Empfänger: Erika Musterfrau\n\nkontakt@paket.example.de\n"),
])
def test_a_parcel_notice_is_not_a_bounce(lang, charset, subject, body):
    # a carrier's notice about a parcel says "not delivered" / "returned to sender" too
    report = dsnparse.parse(_mail(lang, charset, subject, body, frm="Paket <noreply@carrier.example>",
                                  headers=NEWS))
    assert report.kind == "not_bounce", (report.format, [v.final_recipient for v in report.verdicts])


# a delay notice in each language added in the second round: the `delay` phrase makes the
# labelled recipient after it delayed, not failed (generic/unknown-mta#labelled-any-language-delayed)
DELAYS = [
    ("da", "iso-8859-1", "Forsinket levering: Møde",
     "Leveringen er forsinket til følgende modtager.\n\nModtager: lars.nielsen@eksempel.dk\n"),
    ("nb", "iso-8859-1", "Forsinket levering: Møte",
     "Leveringen er forsinket til følgende mottaker.\n\nMottaker: ingrid.hansen@eksempel.no\n"),
    ("fi", "iso-8859-1", "Toimitus viivästynyt: Kokous",
     "Viestin toimitus on viivästynyt seuraavalle vastaanottajalle.\n\nVastaanottaja: mikko.virtanen@esimerkki.fi\n"),
    ("tr", "iso-8859-9", "Teslim gecikti: Toplantı",
     "İletiniz aşağıdaki alıcıya henüz teslim edilemedi.\n\nAlıcı: mehmet.yilmaz@ornek.com.tr\n"),
    ("hu", "iso-8859-2", "Késleltetett kézbesítés: Értekezlet",
     "Késleltetett kézbesítés: a rendszer később újra megpróbálja.\n\nCímzett: kovacs.anna@pelda.hu\n"),
    ("ro", "iso-8859-2", "Livrare întârziată: Întâlnire",
     "Livrarea a fost amânată pentru următorul destinatar.\n\nDestinatar: andrei.popescu@exemplu.ro\n"),
    ("el", "iso-8859-7", "Καθυστέρηση παράδοσης: Συνάντηση",
     "Η παράδοση καθυστερεί για τον παρακάτω παραλήπτη.\n\nΠαραλήπτης: nikos.papadopoulos@paradeigma.gr\n"),
    ("uk", "koi8-u", "Затримка доставки: Зустріч",
     "Доставка затримується для такого одержувача.\n\nОдержувач: oksana.kovalenko@pryklad.ua\n"),
    ("id", "utf-8", "Pengiriman Tertunda: Rapat",
     "Pengiriman tertunda ke penerima berikut.\n\nPenerima: budi.santoso@contoh.co.id\n"),
]


@pytest.mark.parametrize("lang, charset, subject, body", DELAYS, ids=[d[0] for d in DELAYS])
def test_a_delay_notice_in_each_new_language_is_a_delay(lang, charset, subject, body):
    report = dsnparse.parse(_mail(lang, charset, subject, body, frm="MAILER-DAEMON <mailer-daemon@mx.example.org>",
                                  headers=("Auto-Submitted: auto-generated",)))
    want = body.rsplit(": ", 1)[1].strip()
    assert report.kind == "delay" and report.format == "generic/unknown-mta"
    assert [(v.final_recipient, v.action) for v in report.verdicts] == [(want, "delayed")]
    assert "#labelled-any-language-delayed" in report.verdicts[0].rule

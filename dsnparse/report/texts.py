"""The report's words, in English and French (``--lang en|fr``).

The bounce-code descriptions come from the seed table (``rules/codes.yaml``:
``description`` / ``description_fr``, :mod:`dsnparse.codes`); the words of the page are here.
Reason names (``user_unknown``) and enhanced status codes are identifiers and stay as they are
(the registry titles of RFC 3463 are English only).
"""
from __future__ import annotations

LANGS = ("en", "fr")

_EN = {
    "title": "Bounce report",
    "period": "Period",
    "all_time": "everything recorded",
    "generated": "Generated",
    "source": "Source",
    "summary": "Summary",
    "bounces": "bounces",
    "hard": "hard",
    "soft": "soft",
    "delays": "delays",
    "complaints": "complaints",
    "addresses_bounced": "addresses with a bounce",
    "suppressed_now": "addresses suppressed now",
    "pending_review": "pending review",
    "sender_title": "Sender-side problems: fix these first",
    "sender_intro": ("These receivers refused mail because of the sender or the message "
                     "(reputation, authentication, content, rate), not because an address is "
                     "dead. They never suppress an address: the fix is on your side."),
    "sender_none": "No sender-side rejection in this period.",
    "sender_chart": "Rejections by kind of problem",
    "fault": "Fault",
    "u_day": "day", "u_week": "week", "u_month": "month",
    "u_year": "year",
    "daily_title": "Bounces over time",
    "daily_faults": "Bounces per {unit} by fault",
    "daily_kinds": "Hard and soft bounces, delays and complaints per {unit}",
    "domains_title": "Receiving domains",
    "domains_chart": "Bounces by receiving domain and fault",
    "reasons_title": "Reasons and status codes",
    "reasons_chart": "Top reasons",
    "suppr_title": "Suppressions",
    "suppr_chart": "Addresses suppressed per {unit} by basis",
    "suppr_none": "No address was suppressed in this period.",
    "review_title": "Addresses pending review",
    "review_none": "No suppression waits for review.",
    "review_more": "{shown} of {total} shown (newest first); "
                   "`dsnparse suppressions list --tag review_911` lists them all.",
    "campaigns_title": "Campaigns with the most bounces",
    "campaigns_chart": "Bounces by campaign",
    "campaigns_none": ("No bounce names a campaign (the policy's ledger.campaign_headers "
                       "read the returned original's header fields)."),
    "nothing": "Nothing recorded in this period.",
    "day": "Day", "week": "Week of", "month": "Month", "year": "Year",
    "domain": "Domain", "reason": "Reason", "code": "Code",
    "type": "Type", "description": "Description", "status": "Status",
    "registry_title": "Registered title (RFC 3463)", "events": "Bounces",
    "addresses": "Addresses", "total": "Total", "category": "Problem",
    "since": "Since", "last": "Last seen", "example": "Example diagnostic",
    "remote_mta": "Remote MTA", "campaign": "Campaign", "address": "Address",
    "basis": "Basis", "tags": "Tags", "share": "Share",
    "table_note": "The numbers of the chart",
    "fault_recipient": "recipient (address dead)",
    "fault_mailbox": "mailbox (full, disabled)",
    "fault_sender": "sender (reputation, auth)",
    "fault_message": "message (content, size)",
    "fault_network": "network / receiving system",
    "fault_unknown": "unknown",
    "fault_none": "no fault given",
    "basis_hard": "hard bounce", "basis_soft": "persistent soft bounces",
    "basis_complaint": "complaint", "basis_review": "911 / unknown, for review",
    "cat_reputation": "reputation / blocklist",
    "cat_authentication": "authentication (SPF/DKIM/DMARC)",
    "cat_content": "content / spam filter",
    "cat_rate": "rate limit",
    "cat_size": "size or limits",
    "cat_sender_address": "sender address refused",
    "cat_other": "other policy",
    "footer": ("Made by dsnparse from its bounce ledger. Hard/soft and codes per the seed "
               "table; faults per rules/faults.yaml and rules/reasons.yaml. This file makes "
               "no request to any other host."),
}

_FR = {
    "title": "Rapport des rebonds",
    "period": "Période",
    "all_time": "tout ce qui est enregistré",
    "generated": "Généré le",
    "source": "Source",
    "summary": "Résumé",
    "bounces": "rebonds",
    "hard": "durs",
    "soft": "temporaires",
    "delays": "retards",
    "complaints": "plaintes",
    "addresses_bounced": "adresses avec un rebond",
    "suppressed_now": "adresses supprimées à ce jour",
    "pending_review": "à vérifier",
    "sender_title": "Problèmes côté expéditeur : à corriger en premier",
    "sender_intro": ("Ces destinataires ont refusé le courrier à cause de l'expéditeur ou du "
                     "message (réputation, authentification, contenu, débit), pas parce "
                     "qu'une adresse est morte. Ces refus ne suppriment aucune adresse : "
                     "la correction est de votre côté."),
    "sender_none": "Aucun refus côté expéditeur sur cette période.",
    "sender_chart": "Refus par type de problème",
    "fault": "Responsabilité",
    "u_day": "jour", "u_week": "semaine", "u_month": "mois",
    "u_year": "année",
    "daily_title": "Rebonds dans le temps",
    "daily_faults": "Rebonds par {unit} et par responsabilité",
    "daily_kinds": "Rebonds durs et temporaires, retards et plaintes par {unit}",
    "domains_title": "Domaines destinataires",
    "domains_chart": "Rebonds par domaine destinataire et par responsabilité",
    "reasons_title": "Raisons et codes d'état",
    "reasons_chart": "Raisons les plus fréquentes",
    "suppr_title": "Suppressions",
    "suppr_chart": "Adresses supprimées par {unit} et par motif",
    "suppr_none": "Aucune adresse supprimée sur cette période.",
    "review_title": "Adresses à vérifier",
    "review_none": "Aucune suppression en attente de vérification.",
    "review_more": "{shown} sur {total} affichées (les plus récentes) ; "
                   "`dsnparse suppressions list --tag review_911` les liste toutes.",
    "campaigns_title": "Campagnes avec le plus de rebonds",
    "campaigns_chart": "Rebonds par campagne",
    "campaigns_none": ("Aucun rebond ne nomme de campagne (ledger.campaign_headers de la "
                       "politique lit les en-têtes du message d'origine renvoyé)."),
    "nothing": "Rien d'enregistré sur cette période.",
    "day": "Jour", "week": "Semaine du", "month": "Mois", "year": "Année",
    "domain": "Domaine", "reason": "Raison", "code": "Code",
    "type": "Type", "description": "Description", "status": "État",
    "registry_title": "Titre enregistré (RFC 3463, anglais)", "events": "Rebonds",
    "addresses": "Adresses", "total": "Total", "category": "Problème",
    "since": "Depuis", "last": "Dernier", "example": "Exemple de diagnostic",
    "remote_mta": "MTA distant", "campaign": "Campagne", "address": "Adresse",
    "basis": "Motif", "tags": "Étiquettes", "share": "Part",
    "table_note": "Les chiffres du graphique",
    "fault_recipient": "destinataire (adresse morte)",
    "fault_mailbox": "boîte (pleine, désactivée)",
    "fault_sender": "expéditeur (réputation, auth.)",
    "fault_message": "message (contenu, taille)",
    "fault_network": "réseau / système destinataire",
    "fault_unknown": "inconnue",
    "fault_none": "sans responsabilité",
    "basis_hard": "rebond dur", "basis_soft": "rebonds temporaires répétés",
    "basis_complaint": "plainte", "basis_review": "911 / inconnu, à vérifier",
    "cat_reputation": "réputation / liste de blocage",
    "cat_authentication": "authentification (SPF/DKIM/DMARC)",
    "cat_content": "contenu / filtre anti-spam",
    "cat_rate": "limite de débit",
    "cat_size": "taille ou limites",
    "cat_sender_address": "adresse d'expéditeur refusée",
    "cat_other": "autre politique",
    "footer": ("Produit par dsnparse à partir de son registre des rebonds. Durs/temporaires "
               "et codes selon la table de référence ; responsabilités selon "
               "rules/faults.yaml et rules/reasons.yaml. Ce fichier ne fait aucune requête "
               "vers un autre hôte."),
}

_TEXTS = {"en": _EN, "fr": _FR}
assert set(_EN) == set(_FR)


def texts(lang: str) -> dict:
    """The page's words in ``lang`` (``"en"`` or ``"fr"``), a ``dict``.

    Raises:
        ValueError: another language.
    """
    try:
        return _TEXTS[lang]
    except KeyError:
        raise ValueError(f"unknown report language {lang!r} (expected one of "
                         f"{', '.join(LANGS)})") from None

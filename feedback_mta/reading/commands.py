"""The reply commands' words: what a contact admin may write back (``SPAM``, ``NOT SPAM``,
``RESTORE``, ``UNDO``, ``KEEP <id>``, ...), per language, and ``VOCABULARY``, what
``reply_text.read`` reads a reply's intent with; what a contact may answer a confirmation
request (``YES``, ``NO THANKS``, ``UNSUBSCRIBE``, ...), and ``CONSENT_VOCABULARY``, what
``reply_text.read_answers`` reads the answer with.

They live here, in ``reading``, because reading a reply needs only the words: the offline
``feedback-mta parse`` reads the intent of each reply without the database, so it must not
import ``handlers`` (which reach the actions and the store). ``handlers.commands`` pairs
each command's words here with what it does and the acknowledgements it sends. A new
command is its words here (in ``LEAD`` for a lead command) and its module there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from feedback_mta.reading.reply_text import Vocabulary


@dataclass(frozen=True)
class ReplyWords:
    """The words of a command written in a reply: about one lead (the first line of a reply
    to its notification), or a contact's answer to a confirmation request."""

    #: The intent read (``handlers.commands.BY_NAME`` / ``CONSENT_BY_NAME`` finds its
    #: command by it).
    name: str
    #: Language -> the words that alone make the command (folded: no accents needed).
    words: Mapping[str, str]
    #: The command these words make after a negation ("NOT SPAM"), if any.
    negated: str | None = None
    #: At most this many of its words make a line the command ("spam spam spam" flags;
    #: "undo it", but not "undo undo undo", restores).
    max_words: int = 3


#: ``SPAM``: flag the lead. "NOT" before any of these words restores it.
FLAG = ReplyWords("flag", {
    "en": "spam spams spamm spammer junk junkmail fake bogus bot bots scam fraud fraudulent",
    "es": "basura falso falsa falsos fraude estafa nodeseado",
    "fr": "pourriel indesirable faux fausse arnaque",
    "de": "mull gefalscht betrug",
    "pt": "lixo golpe",
    "ru": "спам",
}, negated="restore")

#: ``NOT SPAM``, ``RESTORE``, ``UNDO``: put a flagged lead back among the active ones.
RESTORE = ReplyWords("restore", {
    "en": "restore restored undo unflag unspam unmark",
    "es": "restaurar deshacer recuperar",
    "fr": "restaurer annuler retablir",
    "de": "wiederherstellen ruckgangig",
    "pt": "desfazer",
}, max_words=2)

#: Lead commands in the order they are tried.
LEAD: tuple[ReplyWords, ...] = (FLAG, RESTORE)

# Review commands: language -> the phrases that start a line naming an id, in a reply to a
# digest.
#: ``KEEP <id>`` (or ``NOT SPAM <id>``) a suspected contact of a review digest.
KEEP: Mapping[str, tuple[str, ...]] = {"en": ("keep", "not spam")}
#: ``NOT SPAM <id>`` (or ``RESTORE <id>``) a lead of a spam digest.
NOT_SPAM: Mapping[str, tuple[str, ...]] = {
    "en": ("not spam", "restore"), "es": ("no es spam", "restaurar"),
    "fr": ("pas spam", "restaurer"), "de": ("kein spam", "wiederherstellen"),
    "pt": ("não é spam", "restaurar")}


def vocabulary(commands: Iterable[ReplyWords], *, filler: str = "",
               bare_negation: str | None = None) -> Vocabulary:
    """What ``reply_text.read`` reads the intent of a reply with, from these commands (and
    the words ``filler`` that may surround them, the command a bare "no" makes)."""
    commands = tuple(commands)
    return Vocabulary.of({c.name: " ".join(c.words.values()).split() for c in commands},
                         {c.name: c.negated for c in commands if c.negated},
                         {c.name: c.max_words for c in commands}, filler=filler.split(),
                         bare_negation=bare_negation)


VOCABULARY = vocabulary(LEAD)

# A contact's answer to a confirmation request (a reply to ``confirm+TOKEN``). Words are
# folded (no accents needed); ``a_b`` is the phrase "a b" read as one word. A negation
# alone declines ("no", "no thanks", "non merci", "I don't want this"); a negated word of
# either is no answer ("not sure", "don't remove me"). Nothing is guessed: a reply that
# gives both answers gives none.

#: Yes: the contact confirms (``handlers.commands.confirm``).
CONFIRM = ReplyWords("confirm", {
    "en": "yes yeah yep yup yea sure ok okay confirm confirmed confirming subscribe "
          "subscribed keep stay agree agreed accept accepted absolutely certainly interested "
          "count_me_in sign_me_up opt_in opted_in of_course",
    "de": "ja jawohl jep bestatigen bestatigt bestatige einverstanden gerne klar abonnieren "
          "interesse natuerlich naturlich",
    "fr": "oui ouais confirmer confirme confirmee d_accord volontiers bien_sur evidemment "
          "interesse",
    "es": "si claro confirmar confirmo confirmado vale acepto suscribir suscribirme "
          "de_acuerdo por_supuesto interesado interesada",
    "pt": "sim confirmar confirmo confirmado aceito concordo de_acordo interessado",
    "it": "certo confermo confermare confermato d_accordo va_bene volentieri",
    "nl": "graag bevestigen bevestig bevestigd akkoord prima",
    "pl": "tak potwierdzam zgoda oczywiscie",
    "nordic": "jo jaa kylla bekrafta bekraefte",
    "tr": "evet onayliyorum",
    "ru": "да конечно подтверждаю согласен согласна ок",
    "uk": "так підтверджую згоден згодна",
    "el": "ναι",  # noqa: RUF001 - Greek
    "ja": "はい 承認 了解 お願いします 登録",
    "zh": "是 是的 好 好的 可以 确认 確認 同意 订阅",
    "ko": "네 예 동의",
}, max_words=3)

#: No: the contact declines and is opted out, reason ``declined``
#: (``handlers.commands.decline``).
DECLINE = ReplyWords("decline", {
    "en": "nope nah unsubscribe unsubscribed remove removed delete stop decline declined "
          "refuse optout opt_out opted_out take_me_off not_interested",
    "de": "nein nee abmelden austragen entfernen loschen stopp ablehnen kein_interesse "
          "nicht_interessiert",
    "fr": "desabonner desinscrire supprimer retirer refuser pas_interesse",
    "es": "baja darme_de_baja eliminar borrar cancelar rechazar no_me_interesa "
          "no_estoy_interesado",
    "pt": "remover descadastrar descadastre cancelar sair recusar",
    "it": "rimuovere rimuovi cancellare cancellami disiscrivere",
    "nl": "nee neen verwijderen verwijder afmelden uitschrijven",
    "pl": "nie usun wypisz",
    "nordic": "nej nei ei afmeld avregistrer",
    "tr": "hayır",  # noqa: RUF001 - Turkish
    "ru": "нет отписаться отпишите удалить удалите",
    "uk": "ні відписатися",
    "el": "οχι",
    "ja": "いいえ 結構です 不要 解除 配信停止",
    "zh": "不 不用 不要 不用了 退订 取消",
    "ko": "아니요 아니오",
}, max_words=3)

#: Consent answers, in the order they are tried.
CONSENT: tuple[ReplyWords, ...] = (CONFIRM, DECLINE)

#: Words around an answer that change nothing ("yes, keep me on the list", "please remove
#: me from your mailing list", "I don't want these emails", "nein danke").
CONSENT_FILLER = """
    me my mine i im am we are re you your yours from off on in to of for list mailing
    these those any more anymore
    newsletter newsletters emails mails updates sending send want would like do did
    please pls kindly gracias grazie danke merci obrigado obrigada bedankt dank
    dziekuje tack takk kiitos спасибо дякую ありがとう ありがとうございます 谢谢 감사합니다
    mich mir ich wir bitte moi je nous mi yo nos por favor favore per eu
"""
CONSENT_VOCABULARY = vocabulary(CONSENT, filler=CONSENT_FILLER, bare_negation=DECLINE.name)

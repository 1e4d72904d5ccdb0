"""Opt-out wording in message text: the RE2 patterns that find an opt-out link (read by the
classifier and CS-002) or a reply instruction (CS-002), and `Wording` to run them in SQL.

A link counts when its URL or mailto: says what it is, or when it is labelled as an opt-out
in the same clause, in link text, or right after it; a bare URL with no such label is not
an opt-out. Every pattern carries an optional leading negation, so "we will never
unsubscribe you" or "do not reply" is consumed and then discarded (`*_NEGATED`), and a
cheap `*_GATE` pattern every match contains, so the costly one runs only where it can hit.
"""

from __future__ import annotations

from dataclasses import dataclass

from auditkit.vocabulary import sql_literal

# --- Opt-out links ---------------------------------------------------------------------------
# What a link's label may say for it to be an opt-out. "manage preferences" stands alone
# (the usual footer wording); other "preferences"/"subscriptions" need an email qualifier,
# because "update your preferences" or "manage your subscription" is also account or
# billing wording.
_MAIL_KIND = (
    r"(e-?mail|mail|mailing|subscription|communication|contact|notification|marketing|newsletter)"
)
_LABELS = (
    r"unsubscribe|opt[ -]?out|optout",
    r"manage\s+(your\s+)?preferences",
    r"(manage|update|change|adjust|modify|edit|set|review)\s+(your\s+)?"
    + _MAIL_KIND
    + r"\s+(preferences|settings|subscriptions?)",
    _MAIL_KIND + r"\s+preferences",
    r"stop\s+(receiving|getting)\s+(these\s+|our\s+|this\s+|future\s+|marketing\s+"
    r"|promotional\s+)?(e-?mails?|messages|mail|newsletters?)",
    r"no\s+longer\s+(wish|want)\s+to\s+(receive|get)",
    r"(don['’]?t|do\s+not)\s+want\s+(to\s+(receive|get)\s+)?(these|our|this|future|more"
    r"|any\s+more)\s+(e-?mails|messages|mail)",
    r"(don['’]?t|do\s+not)\s+want\s+to\s+hear\s+from\s+us",
    r"stop\s+hearing\s+from\s+us",
    r"(rather|prefer)\s+not\s+(to\s+)?(hear\s+from\s+us|(receive|get)\s+(these\s+|our\s+"
    r"|this\s+|future\s+|marketing\s+|promotional\s+)?(e-?mails?|messages|mail|newsletters?))",
    r"remove\s+(me|yourself)\s+from\s+(this|our|the|your|all)\s+(mailing\s+)?(list|e-?mails)",
    r"be\s+removed\s+from",
)
OPT_OUT_LABEL = "(" + "|".join(_LABELS) + ")"
_LINK_TARGET = r"(https?://|www\.|mailto:)"
_URL_REST = r"[^\s)\]>\"'<]*"  # the rest of a URL, so the evidence shows all of it
_EMAIL_ADDRESS = r"[a-z0-9._%+-]+@[a-z0-9-]+\.[a-z]+"
# A negation right before the label ("we will never unsubscribe you", "you can't opt out"):
# the match is kept but discarded by OPT_OUT_NEGATED, so it cannot hide a later real one.
_LINK_NEGATION = (
    r"(\b(never|not|cannot|can['’]?t|won['’]?t|unable\s+to)\s+((be\s+)?able\s+to\s+)?)?"
)
_ALTERNATIVES = (
    # A URL, mailto: or address whose own text says what it is.
    r"(https?://|www\.)[^\s)\]>\"']*(unsub|opt-?out|optout|email-?pref|email_pref|preferences"
    r"|manage-subscription|subscription-cent)" + _URL_REST,
    r"mailto:[^\s)\]>\"']*(unsub|opt-?out|optout|remove|[?&]subject=stop)" + _URL_REST,
    r"\b(unsubscribe|unsub|optout|opt-out|remove)[a-z0-9._%+-]*@[a-z0-9-]+\.[a-z]+",
    # A label, then in the same sentence a URL: "Unsubscribe here: https://…", "To opt out,
    # visit https://…", "You can opt out of these emails at any time by visiting https://…",
    # "Unsubscribe: <https://…>"; a question may come first ("Don't want these emails?
    # https://…").
    r"\b" + OPT_OUT_LABEL + r"\b\??[^.!?\n]{0,80}?" + _LINK_TARGET + _URL_REST,
    # "To unsubscribe, email hello@…": a return address, the other mechanism § 7704(a)(3) names.
    r"\bto\s+(unsubscribe|opt[ -]?out|be\s+removed)\b[^.!?\n]{0,20}?\b(e-?mail|write\s+to"
    r"|contact|send\s+(an\s+)?e-?mail\s+to)\b[^.!?\n]{0,15}?" + _EMAIL_ADDRESS,
    # Markdown or HTML link text: "[Manage preferences](https://…)", "<a href=…>unsubscribe</a>".
    r"\[[^\]]{0,80}?\b" + OPT_OUT_LABEL + r"\b[^\]]{0,80}\]\(\s*<?" + _LINK_TARGET + _URL_REST,
    r"<a\b[^>]*\bhref\s*=\s*[\"']?" + _LINK_TARGET + r"[^>]*>[^<]{0,80}?\b" + OPT_OUT_LABEL,
    # A link, then its purpose: "[here](https://…) to unsubscribe", "https://… to opt out".
    r"(\]\(\s*<?" + _LINK_TARGET + r"[^)]*\)"  # markdown link
    r"|<a\b[^>]*\bhref\s*=\s*[\"']?" + _LINK_TARGET + r"[^>]*>[^<]{0,60}</a>"  # HTML anchor
    r"|(https?://|www\.)[^\s<>]+)"  # bare URL
    r"[^.!?\n<]{0,25}?\b(to|if\s+you\s+(wish|want|would\s+like)\s+to)\s+" + OPT_OUT_LABEL,
)
OPT_OUT_LINK = r"(?i)" + _LINK_NEGATION + "(" + "|".join(_ALTERNATIVES) + ")"
OPT_OUT_NEGATED = r"(?i)^(never|not|cannot|can['’]?t|won['’]?t|unable)\b"
# A word every alternative above contains. The big alternation is slow in RE2 (its DFA
# outgrows the cache), so it runs only on text holding one of these: most mail holds none.
OPT_OUT_GATE = r"(?i)(unsub|opt|pref|subscri|remov|stop|longer|want|setting|rather)"

# --- Reply instructions ----------------------------------------------------------------------
# Reply instructions. Not "answer": "Short answer: remove the app" is no instruction.
_REPLY_VERB = r"(reply|replying|respond|responding|write\s+back)"
_REPLY_KEYWORD = r"(stop|unsubscribe|remove(\s+me)?|opt[ -]?out)"
# "Do not reply to this email" and "don't reply" are the opposite of an instruction; the
# negation is consumed with the match and the match dropped by REPLY_NEGATED. "Don't
# hesitate to reply" is not negated: only a negation right before the verb counts.
_REPLY_NEGATION = r"(\b(never|not|don['’]?t|cannot|can['’]?t|won['’]?t)\s+)?"
_REPLY_ALTERNATIVES = (
    # The keyword is the reply itself: "reply STOP", "Reply with 'unsubscribe'", "reply to
    # this email with REMOVE in the subject", "respond with STOP to opt out".
    r"\b" + _REPLY_VERB + r"\b(\s+(to|on)\s+(this|our|the|any|that|a)\s+(e-?mail|message|mail))?"
    r"(\s+(with|using|saying|containing|by\s+(typing|sending|writing)))?(\s+(just|only|simply))?"
    r"(\s+the\s+(word|keyword|text|message))?\s*[\"'“‘«]?\s*" + _REPLY_KEYWORD + r"\b",
    # The keyword quoted later in the sentence: 'Just reply "unsubscribe" and we'll …',
    # 'reply with the subject line "remove me"'.
    r"\b" + _REPLY_VERB + r"\b[^.!?\n]{0,60}?[\"“‘'«]\s*" + _REPLY_KEYWORD + r"\s*[\"”’'»]",
    # The purpose follows the verb: "reply to this email to unsubscribe", "reply and we'll
    # take you off the list".
    r"\b" + _REPLY_VERB + r"\b[^.!?\n]{0,60}?\b(to\s+(unsubscribe|opt[ -]?out|stop\s+(receiving"
    r"|getting)|be\s+(removed|taken\s+off|unsubscribed)|get\s+off)|remove\s+me|take\s+me\s+off"
    r"|unsubscribe\s+me|(we['’]ll|we\s+will)\s+(remove\s+you|take\s+you\s+off|unsubscribe\s+you"
    r"|stop\s+(sending|emailing)))\b",
    # The purpose comes first: "To unsubscribe, reply to this email", "Unsubscribe by
    # replying", "To stop receiving these emails, reply STOP".
    r"\b(to\s+(unsubscribe|opt[ -]?out|be\s+removed|stop\s+(receiving|getting)\b[^.!?\n]{0,30}?)"
    r"|(unsubscribe|opt[ -]?out)\s+(at\s+any\s*time\s+)?by)\b[^.!?\n]{0,30}?\b(reply|replying"
    r"|respond|responding|write\s+back|writing\s+back)\b",
)
REPLY_INSTRUCTION = r"(?i)" + _REPLY_NEGATION + "(" + "|".join(_REPLY_ALTERNATIVES) + ")"
# Every reply instruction names the reply (see OPT_OUT_GATE for why a gate).
REPLY_GATE = r"(?i)(repl|respond|write\s+back|writing\s+back)"
REPLY_NEGATED = (
    r"(?i)^(never|not|don['’]?t|cannot|can['’]?t|won['’]?t)\b"
    r"|\b(not|never|don['’]?t|cannot|can['’]?t)\s+(reply|replying|respond|write\s+back)\b"
)


@dataclass(frozen=True)
class Wording:
    """One kind of opt-out wording: its pattern, the negation that discards a match, and
    the cheap gate every match contains.

    The first match that is not negated takes two SELECTs, one over the other:
    `first_hit_sql` in the inner, `kept_sql` over its column in the outer. Each could be one
    CASE expression, but DuckDB compiles a constant pattern once per appearance in a
    query (the link pattern takes ~10 ms), and runs an expression once per appearance; a
    column from the SELECT below is both compiled and run once.
    """

    pattern: str
    negated: str
    gate: str

    def first_hit_sql(self, text_sql: str) -> str:
        """SQL for the first match in `text_sql`, negated or not; NULL when none. No
        pattern here matches the empty string. `gate` is a cheap pattern every match
        contains, so the costly one runs only where it can hit (DuckDB evaluates a CASE
        branch only for the rows that reach it)."""
        return (
            f"CASE WHEN regexp_matches({text_sql}, {sql_literal(self.gate)}) "
            f"THEN nullif(regexp_extract({text_sql}, {sql_literal(self.pattern)}, 0), '') END"
        )

    def kept_sql(self, hit_sql: str, text_sql: str) -> str:
        """SQL for the first match `negated` does not reject, given `hit_sql`, the column
        `first_hit_sql` made; all matches are listed only when the first is negated.
        Patterns carry an optional leading negation so that a negated phrase is consumed,
        and discarded here, instead of being read as the phrase itself."""
        negated = sql_literal(self.negated)
        every_match = f"regexp_extract_all({text_sql}, {sql_literal(self.pattern)})"
        return (
            f"CASE WHEN {hit_sql} IS NULL THEN NULL "
            f"WHEN NOT regexp_matches({hit_sql}, {negated}) THEN {hit_sql} "
            f"ELSE list_filter({every_match}, lambda m: NOT regexp_matches(m, {negated}))[1] END"
        )


LINK_WORDING = Wording(OPT_OUT_LINK, OPT_OUT_NEGATED, OPT_OUT_GATE)
REPLY_WORDING = Wording(REPLY_INSTRUCTION, REPLY_NEGATED, REPLY_GATE)

# --- Opt-out wording that no pattern above recognised -----------------------------------------
# An opt-out label anywhere in the message, and a link, an address or a reply verb anywhere
# in it: "Don't want these emails anymore? Let us know by replying to this message." is not
# recognised as one mechanism, but it is too close to one to accuse the sender of offering
# none. CS-002 makes such a message a review finding, for a human to read, not an open one.
# Negated labels and replies ("we will never unsubscribe you", "do not reply") do not count.
OPT_OUT_WORDING = Wording(
    pattern=r"(?i)" + _LINK_NEGATION + r"\b" + OPT_OUT_LABEL + r"\b",
    negated=OPT_OUT_NEGATED,
    gate=OPT_OUT_GATE,
)
# A reply verb, a link or an email address: what could carry an opt-out.
_CARRIER = r"\b" + _REPLY_VERB + r"\b|" + _LINK_TARGET + _URL_REST + "|" + _EMAIL_ADDRESS
POSSIBLE_MECHANISM = Wording(
    pattern=r"(?i)" + _REPLY_NEGATION + "(" + _CARRIER + ")",
    negated=REPLY_NEGATED,
    gate=r"(?i)(repl|respond|write|https?://|www\.|mailto:|@)",
)

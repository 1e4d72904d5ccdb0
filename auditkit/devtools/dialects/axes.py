"""What a dialect is (five independent axes, see the package docstring) and the named ones."""

from __future__ import annotations

from dataclasses import dataclass

from auditkit.errors import ConfigError

VOCABULARIES = ("canonical", "decide", "past_tense", "mailbox_update", "no_email_entries")
APPROVERS = ("person", "key", "session")
OPT_OUTS = ("markdown_link", "labelled_url", "reply_instruction")
POSTALS = ("body", "signature")
TYPE_TAGS = ("category", "none", "type")


@dataclass(frozen=True)
class Dialect:
    """How one rendering says things; the package docstring describes each axis."""

    name: str
    vocabulary: str = "canonical"
    approver: str = "person"
    opt_out: str = "markdown_link"
    postal: str = "body"
    type_tags: str = "category"

    def __post_init__(self) -> None:
        for axis, allowed in (
            ("vocabulary", VOCABULARIES),
            ("approver", APPROVERS),
            ("opt_out", OPT_OUTS),
            ("postal", POSTALS),
            ("type_tags", TYPE_TAGS),
        ):
            value = getattr(self, axis)
            if value not in allowed:
                raise ConfigError(
                    f"dialect {self.name!r}: {axis} must be one of {', '.join(allowed)}; "
                    f"got {value!r}"
                )


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect("canonical", "canonical", "person", "markdown_link", "body", "category"),
        Dialect("decide-key", "decide", "key", "labelled_url", "body", "none"),
        Dialect(
            "past-tense-session", "past_tense", "session", "reply_instruction", "signature", "type"
        ),
        Dialect("mailbox-update", "mailbox_update", "person", "labelled_url", "signature", "none"),
        Dialect("no-email-entries", "no_email_entries", "key", "markdown_link", "body", "category"),
    )
}


def get_dialect(dialect: str | Dialect) -> Dialect:
    """The Dialect itself, or the named one; an unknown name is a ConfigError listing them."""
    if isinstance(dialect, Dialect):
        return dialect
    found = DIALECTS.get(dialect)
    if found is None:
        raise ConfigError(f"unknown dialect {dialect!r}; known dialects: {', '.join(DIALECTS)}")
    return found

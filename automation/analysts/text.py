"""Text from a model made storable. A model may answer any character JSON can spell, and two kinds no
database column of ours can hold: NUL (`\\u0000`: PostgreSQL refuses it in text and in jsonb) and a lone
UTF-16 surrogate (`\\ud800`: not a character at all, so it has no UTF-8 form; psycopg cannot send it, jsonb
refuses its escape). One such character in a summary lost the whole analysis at `record`. The text is kept
with the NUL removed and each lone surrogate replaced by U+FFFD (the replacement character), the same way a
browser shows undecodable text; a pair of surrogates is joined into the character it spells."""

NUL = "\x00"


def storable_text(text: str) -> str:
    """`text` without what the database cannot store (see the module's note)."""
    if text.isascii():
        return text.replace(NUL, "")
    # UTF-16 with surrogatepass joins a high and low surrogate written as two code points into one character,
    # and decoding with "replace" turns every surrogate left alone into U+FFFD.
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.replace(NUL, "")

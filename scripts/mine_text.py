"""Doc comment → query text for scripts/mine_pairs.py: the first paragraph of a Markdown-style
doc comment as plain text, with the filters the dev set's Rust rules apply (see
../shared/data/codesearch/README.md). Rust, JavaScript/TypeScript (JSDoc) and Go share them."""
import re

# A doc comment that is a licence or copyright header, not documentation of the code below it.
LICENCE_HEADER = re.compile(
    r"copyright\b|@license\b|SPDX-License-Identifier|all rights reserved|licensed under|"
    r"permission is hereby granted",
    re.I,
)


def plain_query(doc):
    """The first paragraph of `doc` as plain text, or None when it is no usable query: fenced code
    blocks and link definitions removed, links replaced by their text, inline-code backticks and
    emphasis dropped; None if it starts with a section header, has fewer than 3 words or more than
    256, contains a URL or an HTML tag, or is not mostly ASCII letters."""
    doc = re.sub(r"```.*?(```|$)", "", doc, flags=re.S)
    doc = "\n".join(l for l in doc.splitlines() if not re.match(r"\s*\[[^\]]+\]:\s*\S", l))
    doc = doc.strip()
    if doc.startswith("#"):
        return None
    para = re.split(r"\n\s*\n", doc, maxsplit=1)[0]
    if re.search(r"https?://|www\.", para) or re.search(r"</?[A-Za-z][^>]*>", para):
        return None
    para = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", para)
    para = re.sub(r"\[([^\]]*)\]\[[^\]]*\]", r"\1", para)
    para = re.sub(r"\[(`[^`]*`)\]", r"\1", para)
    para = re.sub(r"\[([^\]]+)\]", r"\1", para)
    para = para.replace("`", "")
    para = re.sub(r"(\*\*|__|\*|(?<!\w)_(?=\w)|(?<=\w)_(?!\w))", lambda m: "" if m.group(0) in ("**", "*", "__") else m.group(0), para)
    q = " ".join(para.split())
    words = q.split()
    if len(words) < 3 or len(words) > 256:
        return None
    letters = sum(c.isascii() and c.isalpha() for c in q)
    if letters < 0.5 * len(q.replace(" ", "")):
        return None
    return q

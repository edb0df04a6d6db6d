"""Hypothesis strategies for HTML meant to make the two parsers disagree: the tags the
crawler reads nested inside tags whose strings BeautifulSoup files apart, markup after
`</html>`, comments, processing instructions, entities, odd attributes, charsets that do not
match the bytes, and stray bytes."""

from __future__ import annotations

from hypothesis import strategies as st

_TAGS = [
    "a", "area", "base", "title", "meta", "link",  # read by the crawler
    "script", "style", "template", "rt", "rp",  # strings filed apart by BeautifulSoup
    "ruby", "div", "p", "b", "table", "tr", "td", "svg", "svg:a", "math", "select", "option",
    "textarea", "noscript", "iframe", "head", "body", "html", "frameset", "plaintext", "xmp",
    "A", "Title", "br", "img", "li", "form", "button", "h1", "pre", "object",
]  # fmt: skip
_ATTRIBUTES = ["href", "HREF", "rel", "name", "content", "alt", "charset", "id", "xlink:href"]
_VALUES = st.one_of(
    st.sampled_from(
        ["", "/x", "a b", "canonical", "nofollow", "NoFollow ugc", "robots", "ROBOTS ",
         "noindex, nofollow", "none", "utf-8", "text/html; charset=latin-1", "x\ty",
         "http://h/%zz", "&amp;", "&#0;", "&#x1F600;", "\u00a0", "javascript:x", "#"]
    ),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8),
)  # fmt: skip
_TEXT = st.one_of(
    st.sampled_from(
        [" ", "\n", "&amp;", "&nbsp;", "&lt;a&gt;", "&#128512;", "&bogus;", "x\u3000y",
         "<!--c-->", "<?pi x?>", "<!DOCTYPE html>", "]]>", "<![CDATA[cd]]>", "</", "<", "\x00",
         "\x0c", "\r\n", "\u2028", "é", "\x1c", "</html>"]
    ),
    st.text(st.characters(codec="utf-8"), max_size=10),
)  # fmt: skip


@st.composite
def _attribute(draw) -> str:
    name = draw(st.sampled_from(_ATTRIBUTES))
    value = draw(_VALUES).replace('"', "&quot;")
    quote = draw(st.sampled_from(['"', "'", ""]))
    if quote == "" and (value == "" or any(c in value for c in " \t\n>'\"=<`")):
        quote = '"'
    if quote == "'":
        value = value.replace("'", "&#39;")
    return f" {name}={quote}{value}{quote}"


@st.composite
def fragments(draw, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4 if depth < 3 else 1))):
        if depth >= 4 or draw(st.integers(0, 3)) == 0:
            parts.append(draw(_TEXT))
            continue
        tag = draw(st.sampled_from(_TAGS))
        attributes = "".join(draw(st.lists(_attribute(), max_size=3)))
        inner = draw(fragments(depth + 1))
        close = draw(st.sampled_from([f"</{tag}>", f"</{tag}>", "", "</a>", "</p>"]))
        parts.append(f"<{tag}{attributes}>{inner}{close}")
    return "".join(parts)


@st.composite
def documents(draw) -> tuple[bytes, str]:
    """(body, Content-Type header)."""
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "cp1252", "latin-1", "utf-16", "shift_jis"]))
    prefix = draw(
        st.sampled_from(
            ["", "<!DOCTYPE html>", f'<meta charset="{encoding}">', '<meta charset="nonsense">',
             "\ufeff", '<?xml version="1.0"?>']
        )
    )  # fmt: skip
    body = (prefix + draw(fragments())).encode(encoding, errors="replace")
    body += draw(st.binary(max_size=6))
    header = draw(
        st.sampled_from(
            ["text/html", f"text/html; charset={encoding}", "text/html; charset=bogus",
             "text/html; charset=utf-8"]
        )
    )  # fmt: skip
    return body, header

"""``/docs``: the API's documentation, one HTML page rendered on the server from the app's
own OpenAPI document (every endpoint, its parameters, what it takes and answers, the
problem details). Nothing is fetched: no script, no font, no stylesheet from elsewhere;
the page's Content-Security-Policy forbids it, so a browser could not even if asked."""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter()

#: The page may load nothing at all: its style is inline, it has no script.
POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#1d1d1f}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ccc;margin-top:2.5rem}
h3{margin:1.8rem 0 .3rem;font-size:1.05rem}
code{background:#f1f1f4;padding:0 .25rem;border-radius:3px}
table{border-collapse:collapse;width:100%;margin:.4rem 0 1rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f6f8}.method{font-weight:700;text-transform:uppercase;margin-right:.4rem}
.get{color:#0a6b2d}.post{color:#0645ad}.delete{color:#a11}.muted{color:#666}
nav ul{columns:2;padding-left:1.2rem}
"""
#: Problem ``type`` values a client may tell apart (the rest are ``about:blank``).
PROBLEM_TYPES = (
    ("/problems/idempotency-key-reused", 422,
     "the Idempotency-Key was used before for another request"),
    ("/problems/conflict", 409,
     "refused because of the state of what it acts on (the detail says why): a "
     "suppression no opt-in lifts, a webhook being delivered to right now (Retry-After)"),
)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _prose(text: str) -> str:
    """Escaped text with its `code` spans as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_of(schema: dict[str, Any]) -> str:
    """A schema as a short HTML phrase: ``integer (1-2147483647)``, ``array of Lead``."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(type_of(s) for s in schema[key])
    if "enum" in schema:
        return " | ".join(f"<code>{_e(v)}</code>" for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        return f"object of {type_of(extra) if isinstance(extra, dict) else 'any'}"
    words = [_e(kind)]
    if "format" in schema:
        words.append(f"({_e(schema['format'])})")
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None or high is not None:
        words.append(f"{_e('' if low is None else low)}..{_e('' if high is None else high)}")
    for key, word in (("maxLength", "chars"), ("maxItems", "items")):
        if key in schema:
            words.append(f"at most {_e(schema[key])} {word}")
    return " ".join(words)


def _parameters(params: list[dict[str, Any]]) -> str:
    if not params:
        return ""
    rows = "".join(
        f"<tr><td><code>{_e(p['name'])}</code></td><td>{_e(p['in'])}</td>"
        f"<td>{'yes' if p.get('required') else 'no'}</td>"
        f"<td>{type_of(p.get('schema', {}))}</td>"
        f"<td>{_prose(p.get('description') or p.get('schema', {}).get('description', ''))}"
        f"</td></tr>" for p in params)
    return ("<table><tr><th>parameter</th><th>in</th><th>required</th><th>type</th>"
            f"<th>what</th></tr>{rows}</table>")


def _body(operation: dict[str, Any]) -> str:
    content = operation.get("requestBody", {}).get("content", {})
    return "".join(f"<p>Body ({_e(media)}): {type_of(spec.get('schema', {}))}</p>"
                   for media, spec in content.items())


def _responses(responses: dict[str, Any]) -> str:
    rows = []
    for status, answer in sorted(responses.items()):
        shapes = ", ".join(f"{type_of(spec.get('schema', {}))} <span class=muted>"
                           f"({_e(media)})</span>" for media, spec in
                           answer.get("content", {}).items() if spec.get("schema"))
        rows.append(f"<tr><td>{_e(status)}</td><td>{_prose(answer.get('description', ''))}"
                    f"</td><td>{shapes}</td></tr>")
    return ("<table><tr><th>status</th><th>when</th><th>body</th></tr>"
            f"{''.join(rows)}</table>")


def _operations(document: dict[str, Any]) -> tuple[str, str]:
    """The endpoints (their list and their sections), in the document's order."""
    items, sections = [], []
    for path, methods in document.get("paths", {}).items():
        for method, op in methods.items():
            anchor = _e(op.get("operationId", f"{method}-{path}"))
            title = (f'<span class="method {_e(method)}">{_e(method)}</span>'
                     f"<code>{_e(path)}</code>")
            items.append(f'<li><a href="#{anchor}">{title}</a></li>')
            sections.append(
                f'<section id="{anchor}"><h3>{title}</h3><p>{_prose(op.get("summary", ""))}'
                f"</p>{_parameters(op.get('parameters', []))}{_body(op)}"
                f"{_responses(op.get('responses', {}))}</section>")
    return "".join(items), "".join(sections)


def _schemas(document: dict[str, Any]) -> str:
    out = []
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        required = set(schema.get("required", ()))
        rows = "".join(
            f"<tr><td><code>{_e(field)}</code></td><td>{type_of(spec)}</td>"
            f"<td>{'yes' if field in required else 'no'}</td>"
            f"<td>{_prose(spec.get('description', ''))}</td></tr>"
            for field, spec in schema.get("properties", {}).items())
        body = (f"<table><tr><th>field</th><th>type</th><th>required</th><th>what</th></tr>"
                f"{rows}</table>" if rows else f"<p>{type_of(schema)}</p>")
        out.append(f'<section id="schema-{_e(name)}"><h3>{_e(name)}</h3>'
                   f"<p>{_prose(schema.get('description', ''))}</p>{body}</section>")
    return "".join(out)


def _problems() -> str:
    rows = "".join(f"<tr><td><code>{_e(kind)}</code></td><td>{status}</td><td>{_e(what)}"
                   f"</td></tr>" for kind, status, what in PROBLEM_TYPES)
    return (
        "<p>Every error is an RFC 9457 problem (<code>application/problem+json</code>): "
        "<code>type</code>, <code>title</code>, <code>status</code>, <code>detail</code>; "
        "a 422 adds <code>errors</code>, a list of <code>{\"loc\", \"msg\"}</code> saying "
        "where and what. <code>type</code> is <code>about:blank</code> (the status says "
        "it) except for these:</p><table><tr><th>type</th><th>status</th><th>when</th></tr>"
        f"{rows}</table><p>401: no valid key. 404: not there, or another account's. 409: "
        "refused as things stand. 413: a body too large. 422: a request we cannot take. "
        "429, 408, 503: the connection limits, or the database not answering "
        "(<code>Retry-After</code>). No request answers 5xx.</p>")


def render(document: dict[str, Any]) -> str:
    """The whole page for an OpenAPI document."""
    info = document.get("info", {})
    items, sections = _operations(document)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{_e(info.get('title', 'API'))} API</title><style>{_STYLE}</style></head>"
        f"<body><h1>{_e(info.get('title', 'API'))} API</h1>"
        f"<p class=muted>version {_e(info.get('version', ''))} · "
        '<a href="/openapi.json">openapi.json</a></p>'
        f"<p>{_prose(info.get('description', ''))}</p>"
        "<h2 id=auth>Keys</h2><p>Every <code>/v1</code> request carries "
        "<code>Authorization: Bearer KEY</code> (<code>feedback-mta key add</code>).</p>"
        f"<h2 id=endpoints>Endpoints</h2><nav><ul>{items}</ul></nav>{sections}"
        f"<h2 id=problems>Problems</h2>{_problems()}"
        f"<h2 id=schemas>Shapes</h2>{_schemas(document)}</body></html>")


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    """Rendered from the app's document (made once, then kept by FastAPI) on each request:
    a few milliseconds, for a page read now and then."""
    return HTMLResponse(render(request.app.openapi()),
                        headers={"Content-Security-Policy": POLICY,
                                 "X-Content-Type-Options": "nosniff"})

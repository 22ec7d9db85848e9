"""``/docs`` in headless Chromium: the API's documentation, rendered on the server from the
app's OpenAPI document, names every endpoint and shape, and the page loads nothing from
anywhere but the server it came from (no CDN, no font, no script)."""

from __future__ import annotations

from urllib.parse import urlsplit

from feedback_mta.http import docs
from tests.support import chromium_page
from tests.test_api import Api
from tests.test_api import api as api  # the fixture, by its name


def test_the_docs_page_shows_every_endpoint_and_loads_nothing_from_elsewhere(api: Api):
    document = api.client.get("/openapi.json").json()
    requested: list[str] = []
    with chromium_page() as page:
        page.on("request", lambda request: requested.append(request.url))
        answer = page.goto(f"{api.url}/docs")
        assert answer is not None and answer.status == 200
        assert answer.headers["content-security-policy"] == docs.POLICY
        assert page.title() == "feedback-mta API"
        shown = page.locator("section h3").all_inner_texts()
        for path, methods in document["paths"].items():
            for method in methods:
                assert f"{method.upper()}{path}" in [t.replace(" ", "") for t in shown], path
        for name in document["components"]["schemas"]:
            assert page.locator(f"#schema-{name}").count() == 1, name
        # A link to a shape leads to it; the problem types are listed.
        page.locator("#list_leads a[href='#schema-LeadPage']").first.click()
        assert page.url.endswith("#schema-LeadPage")
        assert page.locator("#problems + p").inner_text().startswith("Every error")
        assert "/problems/conflict" in page.content()
        assert page.locator("script").count() == 0
        page.screenshot(path=str(api.path.parent / "docs.png"), full_page=False)
    assert requested and all(urlsplit(url).hostname == "127.0.0.1" for url in requested), \
        requested
    assert "/docs" not in document["paths"]


def test_the_page_escapes_what_the_document_says():
    page = docs.render({"info": {"title": "<b>x</b>", "description": "`a<b`"},
                        "paths": {"/v1/<x>": {"get": {"summary": "<script>",
                                                      "operationId": "o\"p",
                                                      "responses": {}}}}})
    assert "<script>" not in page and "<b>x" not in page
    assert "<code>a&lt;b</code>" in page and 'id="o&quot;p"' in page

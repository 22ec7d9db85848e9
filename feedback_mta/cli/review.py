"""``review link EMAIL``: a sign-in link to the review page, printed for the operator to
hand over, made by the same action as the links the page mails (good once, for
``[review] link_lifetime``). For a server without ``[outbound] relay``, or an admin whose
mail does not arrive."""

from __future__ import annotations

from typing import Annotated

import typer

from feedback_mta.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    ConfigOpt,
    Failure,
    JsonOpt,
    command,
    emit,
    writing,
)
from feedback_mta.config import Config

review_app = typer.Typer(help="The review page.", no_args_is_help=True)


def page_url(cfg: Config) -> str:
    """Where the review page answers: ``[http] public_url``, else ``[http] listen``."""
    if cfg.http.public_url:
        return cfg.http.public_url
    address = cfg.http.address
    if address is None or address[1] == 0:
        raise Failure("the review page's address is not known: set [http] public_url (or "
                      "[http] listen with a port)", EXIT_CONFIG)
    host, port = address
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


@review_app.command("link")
@command
def review_link(email: Annotated[str, typer.Argument(metavar="EMAIL", show_default=False)],
                config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Print a sign-in link to the review page for a contact admin (good once). Exits 1
    when EMAIL is not a contact admin of any account."""
    with writing(config) as (cfg, uow):
        link = uow.review.make_sign_in_link(email, page_url(cfg), cfg.review.link_lifetime)
    if link is None:
        raise Failure(f"{email} is not a contact admin of any account", EXIT_FAILED)
    if as_json:
        emit({"url": link.url, "email": link.email, "link_id": link.id,
              "expires_at": link.expires_at}, True)
        return
    print(link.url)

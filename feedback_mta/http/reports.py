"""``/v1/reports``: what ``lead report`` prints, over HTTP: the same query
(``queries.reports``), the same rows, with the window and the totals around them.

A key sees its own account's report only (another account's is a 404, as for every other
route); an every-account key names the account (``account_id``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlmodel import Session

from feedback_mta.http.problems import RESPONSES, ProblemError
from feedback_mta.http.services import Reader
from feedback_mta.http.v1 import Timestamp, Who, needs_account
from feedback_mta.queries import reports
from feedback_mta.queries.cursors import MAX_ID

router = APIRouter(prefix="/v1", responses=RESPONSES)


class ReportRow(BaseModel):
    key: str = Field(description="The period's first day (YYYY-MM-DD, UTC; a week is named "
                                 "by its Monday) or the source network (unknown, other)")
    leads: int = Field(description="Leads not flagged as spam")
    spam_leads: int = Field(description="Leads flagged as spam, by anyone; never in leads")


class LeadReport(BaseModel):
    account_id: int
    by: reports.By
    since: Timestamp
    until: Timestamp
    rows: list[ReportRow]
    leads: int = Field(description="Total of the rows' leads (spam leads never in it)")
    spam_leads: int


@router.get("/reports/leads", response_model=LeadReport,
            summary="Leads per day, week or source, spam counted apart (lead report)")
def lead_report(who: Who, reader: Reader,
                account_id: Annotated[int | None, Query(
                    ge=1, le=MAX_ID, description="Needed with an every-account key.")] = None,
                since: Annotated[datetime | None, Query(
                    description=f"ISO date or time (UTC unless zoned); default "
                                f"{reports.DEFAULT_DAYS} days ago, at most "
                                f"{reports.MAX_DAYS} back")] = None,
                by: reports.By = reports.By.DAY) -> Any:
    account = needs_account(who, account_id, "query")
    with Session(reader) as session:
        try:
            report = reports.lead_report(session, account, by=by, since=since)
        except reports.BadWindow as exc:
            raise ProblemError(422, str(exc), errors=[
                {"loc": ["query", "since"], "msg": str(exc).partition(": ")[2]}]) from None
    return {"account_id": report.account_id, "by": report.by, "since": report.since,
            "until": report.until, "rows": reports.report_rows(report),
            "leads": report.leads, "spam_leads": report.spam_leads}

"""The lead spam score: rules over the comments and the contact, as a table of leads."""

from __future__ import annotations

import pytest

from feedback_mta.quality.spam import KNOWN_BAD, LeadFacts, score

THRESHOLD = 0.9

# (comments, email, contact level, flagged at the default threshold, reasons that must show)
LEADS = [
    ("Is the 2019 Civic still available? Can I test drive it Saturday?", "ann@gmail.com",
     "ok", False, ()),
    ("Please call me at (555) 123-4567 after 5pm about financing.", "bo@yahoo.com",
     "ok", False, ()),
    ("I saw this one: https://dealer.example.com/inventory/123 is it certified?",
     "cy@outlook.com", "ok", False, ("a link",)),
    ("My wife dee@example.org will come too. Do you take trade-ins?", "ed@example.org",
     "ok", False, ("an email address in the comments",)),
    ("WHEN CAN I COME IN TO SEE THE TRUCK??? PLEASE ANSWER", "fay@gmail.com",
     "ok", False, ("shouting",)),
    ("Hi! I can get your website on the first page of Google with our SEO services. "
     "See http://bit.ly/3xYz and http://seo-agency.example/offer or write seo@agency.example",
     "info@agency.example", "ok", True, ("seo pitch", "several links", "shortened link")),
    ("Earn passive income with our crypto trading bot!!! http://203.0.113.7/join",
     "gus@mail.example", "ok", True, ("crypto", "link to a bare IP address")),
    ("Subscribe to my channel https://youtube.com/@bestcars for more reviews",
     "hal@gmail.com", "ok", False, ("channel promotion", "a link")),
    ("Subscribe to my channel https://youtube.com/@bestcars http://tinyurl.com/x9",
     "hal@gmail.com", "suspected", True, ("channel promotion", "suspected contact")),
    ("xkqzvwpt jhgfdsa qwrtzp bcdfgh", "ivy@gmail.com", "ok", False, ("gibberish comments",)),
    ("please call", "jo@gmail.com", "invalid", True, (KNOWN_BAD,)),
    ("", "kim@gmail.com", "ok", False, ()),
]


@pytest.mark.parametrize(("comments", "email", "level", "flagged", "reasons"), LEADS)
def test_the_rules_flag_form_spam_and_leave_buyers_alone(comments, email, level, flagged,
                                                          reasons):
    result = score(LeadFacts(comments, email, level))
    assert result.flagged(THRESHOLD) is flagged, result
    assert set(reasons) <= set(result.reasons), result
    assert 0.0 <= result.score <= 1.0


def test_no_signal_scores_zero_and_a_known_bad_contact_one():
    assert score(LeadFacts("Do you have it in blue?", "a@b.example")).score == 0.0
    bad = score(LeadFacts("", "a@b.example", "invalid", ("name is gibberish",)))
    assert (bad.score, bad.reasons) == (1.0, (KNOWN_BAD, "name is gibberish"))


def test_more_signals_never_lower_the_score():
    one = score(LeadFacts("crypto bitcoin now", "a@b.example"))
    two = score(LeadFacts("crypto bitcoin now http://bit.ly/x", "a@b.example"))
    assert two.score > one.score and two.reasons[0] == "crypto"

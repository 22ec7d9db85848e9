"""The lead spam score: rules over the comments and the contact, as a table of leads."""

from __future__ import annotations

import itertools
import math

import pytest

from feedback_mta.quality import campaigns, spam
from feedback_mta.quality.spam import KNOWN_BAD, LeadFacts, score, script

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


# --- behaviour ---------------------------------------------------------------------------

# (facts beyond the words, the reasons that must show, flagged alone at the default)
BEHAVIOUR = [
    ({"ip_leads": 4}, (), False),
    ({"ip_leads": 5}, ("several leads from one address",), False),
    ({"ip_leads": 20}, ("many leads from one address",), False),
    ({"net_leads": 49}, (), False),
    ({"net_leads": 50}, ("many leads from one network",), False),
    ({"campaign_senders": 2}, (), False),
    ({"campaign_senders": 3}, ("campaign: the same comments from several senders",), False),
    ({"campaign_senders": 10}, ("campaign: the same comments from many senders",), False),
    ({"script_share": None}, (), False),
    ({"script_share": 0.02}, (), False),
    ({"script_share": 0.0}, ("a script the account's leads are not written in",), False),
    # Two strong ones do not yet (0.88); three together do.
    ({"ip_leads": 20, "campaign_senders": 10}, ("many leads from one address",), False),
    ({"ip_leads": 20, "campaign_senders": 10, "script_share": 0.0},
     ("many leads from one address",), True),
]


@pytest.mark.parametrize(("facts", "reasons", "flagged"), BEHAVIOUR)
def test_behaviour_signals_and_none_flags_a_buyer_alone(facts, reasons, flagged):
    result = score(LeadFacts(BUYER, "ann@gmail.com", **facts))
    assert set(reasons) <= set(result.reasons) and len(result.reasons) >= len(reasons), result
    assert result.flagged(THRESHOLD) is flagged, result
    if not reasons:
        assert result.score == 0.0


BUYER = "Is the 2019 Civic still available? Can I test drive it Saturday?"


# (address, first, last, unlike the name)
ADDRESSES = [
    ("jsmith@gmail.com", "John", "Smith", False),
    ("carlover77@gmail.com", "John", "Smith", False),     # unlike, but a real person's kind
    ("ann.lee1987@yahoo.com", "Ann", "Lee", False),
    ("hans.muller@web.de", "Hans", "Müller", False),
    ("48213377@qq.com", "John", "Smith", True),
    ("xkqzvwtp@mail.example", "Ann", "Lee", True),
    ("48213377@qq.com", "Li", "Wu", False),                # names too short to say
    ("info@agency.example", "Sam", "Hill", False),         # a role address says so instead
]


@pytest.mark.parametrize(("address", "first", "last", "unlike"), ADDRESSES)
def test_an_address_unlike_the_name(address, first, last, unlike):
    result = score(LeadFacts("", address, first=first, last=last))
    assert ("address unlike the name" in result.reasons) is unlike, result
    assert not result.flagged(THRESHOLD)


@pytest.mark.parametrize(("text", "expected"), [
    ("Is the 2019 Civic still available?", "latin"),
    ("Здравствуйте, интересует автомобиль, позвоните мне", "cyrillic"),
    ("这辆车还在吗请给我打电话谢谢你们的帮助", "han"),
    ("مرحبا، هل السيارة لا تزال متاحة للبيع", "arabic"),
    ("ok", ""),
    ("", ""),
])
def test_the_script_of_the_comments(text, expected):
    assert script(text) == expected


SPUN = [
    "Hi! I can get your website on the first page of Google with our SEO services, "
    "contact me today for a free audit",
    "Hello! I can get your site on the first page of Google with our SEO services, "
    "contact us today for a free audit",
    "Hey! We can get your website on the first page of Google with our SEO services, "
    "contact me today for a free audit",
]
ALIKE_BUYERS = [
    "Is the 2019 Civic still available? Can I test drive it on Saturday morning please",
    "Is the 2020 Accord still available? Can I come and see it on Saturday afternoon",
]


def test_spun_comments_share_bands_and_buyers_questions_built_alike_do_not():
    first, *others = (set(campaigns.bands(text)) for text in SPUN)
    assert all(first & other for other in others)
    assert not set(campaigns.bands(ALIKE_BUYERS[0])) & set(campaigns.bands(ALIKE_BUYERS[1]))
    assert campaigns.resemblance(SPUN[0], SPUN[1]) > 0.4
    assert campaigns.resemblance(*ALIKE_BUYERS) < 0.3


#: Band keys as stored: other nodes and earlier versions of the service compared them
#: across a day of leads, so a faster ``campaigns.signature`` must give the same ones.
BANDS = {
    "We can get your website on the first page of Google, contact us for an audit": [
        -1816948063561557166, -2646438085326923346, 3058095344191389621,
        -4608513483236294508, -1427505877692010808, 1290183350289564509,
        -1226620075455594613, -3807224610193163263, 3475394987776938630,
        -2540230344431595899],
    "Привет! Лучшие цены на рекламу в интернете, пишите нам в телеграм": [
        2596899269355527309, -1800676679969674521, 239638815741254704,
        2281644703170355472, -3346129803869417384, -3821823793751513461,
        -2744338215702854633, -740901283078062431, -2972323514889149056,
        2168252422745752912],
    "x": [],
}


def test_comment_bands_are_the_ones_stored_before():
    assert {text: campaigns.bands(text) for text in BANDS} == BANDS
    # The same on every node and run (fixed seeds), signed 63-bit for a BIGINT column.
    assert campaigns.bands(SPUN[0]) == campaigns.bands(SPUN[0])
    assert all(-(1 << 62) <= b < (1 << 62) for b in campaigns.bands(SPUN[0]))
    # Short comments are what every buyer writes: no bands.
    assert campaigns.bands("Is it still available? Thanks!") == []


@pytest.mark.parametrize("run", ["1", "a", "a.", "www."])
def test_reading_comments_is_linear_in_their_length(run):
    """One long run of what an address's local part is made of: the address pattern tried
    from each of its characters made 64 KB cost 7 s of CPU, and grew with the square."""
    import time

    text = run * (100_000 // len(run))
    started = time.process_time()
    found = score(LeadFacts(text + " write to ann@mail.example", "bo@b.example"))
    assert time.process_time() - started < 1.0
    assert "an email address in the comments" in found.reasons


def test_a_link_s_domain_is_a_feature_whatever_its_path():
    found = spam.features("see https://www.Example.com/a?b=1 and http://promo.bit.ly/x, "
                          "not example.org", "pat@people.test")
    assert {"u:example.com", "u:bit.ly"} <= set(found)
    assert not any(f.startswith("u:") for f in spam.features("see example.org", "p@q.test"))


def test_character_grams_survive_obfuscation_and_need_no_spaces():
    assert spam.grams("Casino", 10) == ["c: cas", "c:asin", "c:casi", "c:ino ", "c:sino"]
    # The same text, the same ones; a cap keeps the same subset whatever the order.
    assert spam.grams("cas1no fr33 spins", 4) == spam.grams("spins fr33 cas1no", 4)
    assert len(spam.grams("cas1no fr33 spins", 4)) == 4
    assert "c:免费赢取" in spam.grams("免费赢取大奖", 50)  # no spaces between the words


def test_calibration_compares_the_scores_with_the_spam_observed_per_band():
    assert spam.band(0.0) == 0.0 and spam.band(0.95) == 0.9 and spam.band(1.0) == 0.99
    bands = spam.calibration([(0.9, 4, 3.8, 3), (0.0, 10, 0.2, 1), (0.5, 0, 0.0, 0)])
    assert bands == [spam.Band(0.0, 0.1, 10, 0.02, 0.1), spam.Band(0.9, 0.99, 4, 0.95, 0.75)]


def _labels(seen: int, flagged: int = 0, restored: int = 0) -> dict[str, spam.Counts]:
    """The counters of ``seen`` leads, ``flagged`` by the system and not restored,
    ``restored`` of the system's flags restored by a person (as ``Leads.restore`` counts
    them: the flag taken back, a label the other way, one more ``AUTO_RESTORED``)."""
    return {spam.LABELS: spam.Counts(seen=seen, ham=restored, auto=flagged),
            spam.AUTO_RESTORED: spam.Counts(ham=restored)}


def _odds(p: float) -> float:
    return p / (1 - p)


def test_the_threshold_follows_restores_against_the_budget_within_bounds():
    flagging = spam.Flagging(0.9, budget=0.01, restored_share=0.5)
    assert flagging.threshold({}, {}) == 0.9  # nothing counted yet
    # 1,000 real leads, 5 restores: exactly the budget's (1% flagged wrongly, half restored).
    assert flagging.threshold(_labels(1000, 0, 5), {}) == pytest.approx(0.9)
    # Four times as many and one more (the +1s): the threshold's odds times 4 squared.
    assert _odds(flagging.threshold(_labels(1000, 0, 23), {})) == pytest.approx(9 * 16)
    more = [flagging.threshold(_labels(1000, 0, restored), {}) for restored in (6, 8, 12)]
    assert 0.9 < more[0] < more[1] < more[2] < spam.THRESHOLD_MAX
    assert flagging.threshold(_labels(1000, 0, 100), {}) == pytest.approx(spam.THRESHOLD_MAX)
    # Fewer restores than the budget expects: lower, but never far below the configured
    # one (people who never restore must not slide it towards flagging everything).
    fewer = flagging.threshold(_labels(1000, 0, 4), {})
    never = flagging.threshold(_labels(1_000_000, 0, 0), {})
    assert never == pytest.approx(1 / (1 + math.exp(-(math.log(9) - spam.THRESHOLD_DROP))))
    assert 0.75 < never < fewer < 0.9
    # Flagged leads not restored are no real leads: they move nothing.
    assert flagging.threshold(_labels(1500, 500, 5), {}) == pytest.approx(0.9)


def test_a_burst_of_restores_weighs_less_as_real_leads_follow_it():
    """A ratio of the counts, not a running sum: ten restores at once raise the threshold,
    and the real leads that follow without any bring it back, whatever came before."""
    flagging = spam.Flagging(0.9, budget=0.005, restored_share=0.5)
    after = [flagging.threshold(_labels(real, 0, 10), {})
             for real in (1_000, 4_000, 10_000)]
    assert after[0] > 0.98 and after[0] > after[1] > after[2]
    assert after[2] < 0.9  # 10 against the 25 the budget allows 10,000 real leads
    # However long it ran within its budget, a platform's threshold is where it was set.
    assert flagging.threshold(_labels(1_000_000, 0, 2_500), {}) == pytest.approx(0.9, 1e-3)


def test_the_threshold_stays_put_without_a_budget_or_at_one_and_keeps_a_higher_start():
    restored = _labels(1000, 0, 50)
    assert spam.Flagging(0.9, budget=0).threshold(restored, {}) == 0.9
    assert spam.Flagging(1.0).threshold(restored, {}) == 1.0
    assert spam.SpamScore(1.0).flagged(spam.Flagging(0.9).threshold(restored, {}))
    # A configured threshold above the cap is not lowered by it.
    assert spam.Flagging(0.9995).threshold(_labels(1000, 0, 5), {}) == pytest.approx(0.9995)


def test_an_account_s_own_restores_weigh_in_as_its_real_leads_grow():
    flagging = spam.Flagging(0.9, budget=0.01, restored_share=0.5)
    platform = _labels(100_000, 0, 500)  # the platform within its budget
    young, grown = _labels(10, 0, 2), _labels(spam.OWN_THRESHOLD_LEADS * 9, 0, 400)
    assert flagging.threshold(platform, {}) == pytest.approx(0.9)
    assert 0.9 < flagging.threshold(platform, young) < 0.91  # 10 real leads: a 1% say
    assert flagging.threshold(platform, grown) > 0.99  # 90% of the say, 9x its budget
    # No jump where an account crosses any count of real leads.
    steps = [flagging.threshold(platform, _labels(n, 0, 20)) for n in range(990, 1011)]
    assert max(abs(a - b) for a, b in itertools.pairwise(steps)) < 0.001

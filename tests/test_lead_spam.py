"""New leads scored as they arrive: form spam and known-bad contacts' leads are flagged by
the system before the platform forwards or exports them; buyers' leads are not.

Through the real API (``POST /v1/leads``) and the command line (``lead add``, ``lead
export``), on a real database of each engine.
"""

from __future__ import annotations

from feedback_mta.actions import CLI, unit_of_work
from tests.conftest import write_config
from tests.test_api import api  # noqa: F401 (the fixture)
from tests.test_cli import ok_json, ok_rows

SEO = ("Hi! I can get your website on the first page of Google with our SEO services. "
       "See http://bit.ly/3xYz and http://seo-agency.example/offer")
BUYER = "Is the 2019 Civic still available? Can I test drive it Saturday?"


def test_a_spam_lead_is_flagged_as_it_arrives_and_a_buyer_s_is_not(api):  # noqa: F811
    spam = api.client.post("/v1/leads", json={"email": "pitch@agency.test", "first": "Sam",
                                              "last": "Hill", "comments": SEO})
    buyer = api.client.post("/v1/leads", json={"email": "ann@people.test", "first": "Ann",
                                               "last": "Lee", "comments": BUYER})
    assert spam.status_code == buyer.status_code == 201
    spam, buyer = spam.json(), buyer.json()
    assert (spam["status"], spam["notify"], spam["flagged_via"]) == ("spam", False, "auto")
    assert spam["spam_score"] >= 0.9 and "seo pitch" in spam["spam_reasons"]
    assert (buyer["status"], buyer["notify"], buyer["flagged_via"]) == ("active", True, None)
    assert buyer["spam_score"] == 0.0 and buyer["spam_reasons"] == []

    [flagged] = api.events("lead.flagged_spam")
    assert (flagged["subject_id"], flagged["actor"], flagged["via"]) == (
        spam["id"], "system", "auto")
    assert flagged["data"]["score"] == spam["spam_score"]
    created = [e for e in api.events("lead.created") if e["subject_id"] == spam["id"]]
    assert [(e["actor"], e["via"]) for e in created] == [(f"api:key{1}", "api")]
    assert api.client.get(f"/v1/leads/{spam['id']}").json()["spam_reasons"] == spam[
        "spam_reasons"]

    to_review = ok_rows(api.path, "lead", "list", "--status", "spam", "--via", "auto")
    assert [(row["id"], row["spam_score"]) for row in to_review] == [
        (spam["id"], spam["spam_score"])]
    assert ok_rows(api.path, "lead", "list", "--status", "spam", "--via", "email") == []
    exported = ok_rows(api.path, "lead", "export", "--account", str(api.account))
    assert [row["id"] for row in exported] == [buyer["id"]]
    # A person restores it: then it goes out like any lead.
    assert api.client.post(f"/v1/leads/{spam['id']}/restore").json()["status"] == "active"
    exported = ok_rows(api.path, "lead", "export", "--account", str(api.account))
    assert [row["id"] for row in exported] == [spam["id"]]


def test_a_known_bad_contact_s_lead_is_never_exported(api):  # noqa: F811
    account = str(api.account)
    bot = ok_json(api.path, "lead", "add", "--account", account, "--email", "x@people.test",
                  "--first", "Xkqzvwpt", "--last", "Jhgfdsa", "--comments", "asdasd")
    assert (bot["status"], bot["notify"], bot["quality"]) == ("spam", False, "invalid")
    assert bot["spam_score"] == 1.0 and bot["spam_reasons"][0] == "known bad contact"
    later = ok_json(api.path, "lead", "add", "--account", account, "--email", "liz@people.test",
                    "--first", "Liz", "--last", "Ray", "--comments", BUYER)
    assert later["notify"] is True
    # Known to be a bot's only after its lead came: its lead stays active, and unexported.
    with unit_of_work(api.engine, CLI) as uow:
        uow.quality.mark_invalid(uow.contacts.get(later["contact_id"]), ["found out later"])
    assert ok_rows(api.path, "lead", "export", "--account", account) == []


def test_the_threshold_is_the_config_s(tmp_path, sqlite_url):
    path = write_config(tmp_path / "c.toml", sqlite_url, leads={"auto_flag_threshold": 1.0})
    ok_json(path, "db", "upgrade")
    account = str(ok_json(path, "account", "add", "Dealer")["id"])
    pitch = ok_json(path, "lead", "add", "--account", account, "--email", "p@agency.test",
                    "--first", "Sam", "--last", "Hill", "--comments", SEO)
    assert (pitch["status"], pitch["notify"]) == ("active", True) and pitch["spam_score"] >= 0.9
    bot = ok_json(path, "lead", "add", "--account", account, "--email", "x@people.test",
                  "--first", "Xkqzvwpt", "--last", "Jhgfdsa")
    assert bot["status"] == "spam"  # 1.0: only known-bad contacts' leads


def test_restores_past_the_false_flag_budget_raise_the_threshold(tmp_path, database_url):
    """A restore of what the system flagged is past the budget here (1% of one real lead,
    all restored): the threshold rises above the pitch's score, and the same pitch is shown
    to the dealer. A dealer undoing their own flag is no false flag: it moves nothing.
    ``leads model`` says the threshold a lead meets now; ``leads retrain`` counts the
    same."""
    path = write_config(tmp_path / "c.toml", database_url, leads={
        "auto_flag_threshold": 0.9, "false_flag_budget": 0.01, "restored_share": 1.0})
    ok_json(path, "db", "upgrade")
    account = str(ok_json(path, "account", "add", "Dealer")["id"])

    def lead(n: int, comments: str) -> dict:
        return ok_json(path, "lead", "add", "--account", account, "--email",
                       f"p{n}@agency.test", "--first", "Sam", "--last", "Hill",
                       "--comments", comments)

    assert ok_json(path, "leads", "model")["threshold"] == 0.9
    buyer = lead(0, BUYER)
    ok_json(path, "lead", "flag", str(buyer["id"]))  # the dealer's mistake...
    ok_json(path, "lead", "restore", str(buyer["id"]))  # ...undone
    assert ok_json(path, "leads", "model")["threshold"] <= 0.9
    first = lead(1, SEO)
    assert first["status"] == "spam" and 0.9 < first["spam_score"] < 0.96
    ok_json(path, "lead", "restore", str(first["id"]))
    raised = ok_json(path, "leads", "model")
    assert raised["threshold"] > first["spam_score"]
    assert raised["labels"][account]["threshold"] == raised["threshold"]  # one account
    second = lead(2, SEO)
    assert (second["status"], second["spam_score"]) == ("active", first["spam_score"])
    counted = ok_json(path, "leads", "model")
    assert ok_json(path, "leads", "retrain")["leads"] == 3
    assert ok_json(path, "leads", "model") == counted


BUYERS = ["Is the {} still available?", "Can I test drive the {} on Saturday?",
          "What is the best price on the {}?", "Do you take trade-ins for the {}?",
          "Does the {} come with a warranty?", "How many miles on the {}?"]
MODELS = ["Civic", "Accord", "Corolla", "Camry", "Golf"]
WATCHES = ["Cheap replica watches, rolex copies of best quality",
           "Best quality rolex replica watches, cheap copies",
           "Replica watches for sale: rolex, omega copies, cheap"]


def test_dealers_flags_teach_and_restores_teach_the_other_way(api):  # noqa: F811
    def add(comments: str, n: int) -> dict:
        answer = api.client.post("/v1/leads", json={
            "email": f"p{n}@people.test", "first": "Pat", "last": "Moss", "comments": comments})
        assert answer.status_code == 201, answer.text
        return answer.json()

    n = 0
    for template in BUYERS:
        for model in MODELS:
            n += 1
            assert add(template.format(model), n)["notify"] is True
    # No rule knows watches: the dealers' flags are what teaches it (two are enough).
    for comments in WATCHES[:2]:
        n += 1
        lead = add(comments, n)
        assert lead["notify"] is True and lead["spam_score"] == 0.0, lead
        assert api.client.post(f"/v1/leads/{lead['id']}/flag").json()["status"] == "spam"

    n += 1
    similar = add(WATCHES[2], n)
    assert (similar["status"], similar["flagged_via"], similar["notify"]) == (
        "spam", "auto", False)
    assert any(r.startswith("like leads people flagged (") for r in similar["spam_reasons"])
    n += 1
    buyer = add("Is the Golf still available in blue?", n)
    assert (buyer["status"], buyer["notify"]) == ("active", True)

    model = ok_json(api.path, "leads", "model")
    # 31 real leads and no restore yet: the threshold a little below the configured 0.9.
    assert model["labels"][str(api.account)] == {"spam": 2, "ham": 0,
                                                 "threshold": model["threshold"]}
    assert 0.85 < model["threshold"] < 0.9
    assert model["leads_seen"] == n
    flagged_words = {f"w:{w.strip(',').lower()}" for text in WATCHES[:2] for w in text.split()}
    strongest = [f["feature"] for f in model["features"]]
    # Flagged twice, seen in every lead: the weakest (the domain, the script).
    assert set(strongest[-2:]) == {"d:people.test", "s:latin"}, strongest
    assert set(strongest[:-2]) <= flagged_words, strongest
    assert model["features"][0]["spam"] == 2 and model["learning"] is True
    # Calibration: every scored lead in a band; the low band holds the two watches people
    # flagged among the buyers, the top one the lead the system flagged.
    bands = model["calibration"]
    assert sum(b["leads"] for b in bands) == n
    assert bands[0]["low"] == 0.0 and bands[0]["observed"] == round(2 / bands[0]["leads"], 4)
    assert bands[-1]["observed"] == 1.0 and bands[-1]["expected"] >= 0.9, bands

    # A person restores it: a label the other way, and the next one scores lower.
    assert api.client.post(f"/v1/leads/{similar['id']}/restore").json()["status"] == "active"
    n += 1
    again = add(WATCHES[2], n)
    assert again["spam_score"] < similar["spam_score"]
    learned = ok_json(api.path, "leads", "model")
    assert learned["labels"][str(api.account)] == {"spam": 2, "ham": 1,
                                                   "threshold": learned["threshold"]}
    assert learned["threshold"] > model["threshold"]  # one restore, past the budget
    # Counted again from the leads: what the counts say now holds (the restored lead is a
    # ham label, the two flagged ones spam; every lead seen once).
    assert ok_json(api.path, "leads", "retrain")["leads"] == n
    assert ok_json(api.path, "leads", "model") == learned
    # After 30 leads in Latin letters, one in Cyrillic is unusual for this account (a
    # reason, not a flag); the first one of another account is not.
    russian = "Здравствуйте, интересует этот автомобиль, позвоните"
    assert add(russian, n + 1)["spam_reasons"] == [
        "a script the account's leads are not written in"]
    other = api.as_(api.other_key).post("/v1/leads", json={
        "email": "iv@people.test", "first": "Ivan", "last": "Petrov", "comments": russian})
    assert other.json()["spam_reasons"] == []


SPUN = ["Hi! I can get your website on the first page of Google with our services, "
        "contact me today for a free audit",
        "Hello! I can get your site on the first page of Google with our services, "
        "contact us today for a free audit",
        "Hey! We can get your website on the first page of Google with our services, "
        "contact me today for a free audit",
        "Hi! I can get your web site on the first page of Google with our services, "
        "contact me today for a free audit"]
CAMPAIGN = "campaign: the same comments from several senders"


def test_campaigns_across_accounts_and_many_leads_from_one_address(api):  # noqa: F811
    def post(key, n, comments, ip="203.0.113.5") -> dict:
        answer = api.as_(key).post("/v1/leads", json={
            "email": f"s{n}@mail.test", "first": "Sam", "last": "Hill", "ip": ip,
            "comments": comments})
        assert answer.status_code == 201, answer.text
        return answer.json()

    # One buyer asking three dealers the same: no campaign.
    for n, key in enumerate((api.key, api.other_key, api.key)):
        asked = api.as_(key).post("/v1/leads", json={
            "email": "ann@people.test", "first": "Ann", "last": "Lee",
            "ip": f"198.51.100.{n + 1}", "comments": SPUN[0]})
        assert CAMPAIGN not in asked.json()["spam_reasons"]
    # The same pitch, spun, from other senders and networks, in both accounts.
    found = [post(key, n, text, ip=f"192.0.{n}.1")["spam_reasons"]
             for n, (key, text) in enumerate(zip(
                 (api.key, api.other_key, api.key, api.other_key), [*SPUN[1:], SPUN[0]],
                 strict=True))]
    assert CAMPAIGN not in found[0]
    assert CAMPAIGN in found[-1], found  # like four other senders' (LSH: some pairs miss)
    # Many leads from one address within the hour.
    reasons = [post(api.key, 100 + n, BUYERS[n].format("Civic"), ip="203.0.113.9")[
        "spam_reasons"] for n in range(6)]
    assert reasons[4] == [] and reasons[5] == ["several leads from one address"], reasons
    buyer = post(api.key, 200, "Do you have the Golf in blue?", ip="203.0.114.9")
    assert (buyer["spam_reasons"], buyer["notify"]) == ([], True)
    # The same words from many senders is a campaign, whatever they say: a reason, not a
    # flag on its own (a platform's prefilled comment is the same for every buyer).
    same = [post(api.key, 300 + n, BUYER, ip=f"10.{n}.0.1") for n in range(5)]
    assert CAMPAIGN in same[-1]["spam_reasons"] and same[-1]["notify"] is True


def test_a_flood_from_one_address_is_counted_only_as_far_as_its_signals_need(engine, cfg):
    """A lead's behaviour counts stop where their signals do (``spam.MANY_*``): a bot's
    thousandth lead from one address, or a campaign's hundredth sender, reads no more
    rows than its twentieth, instead of registering slower with each lead."""
    from feedback_mta.addresses import AddressBook
    from feedback_mta.quality import campaigns, spam

    pitch = "We can get your website on the first page of Google, contact us for an audit"
    bands = campaigns.bands(pitch)
    book = AddressBook.from_config(cfg)
    counted = []
    with unit_of_work(engine, CLI) as uow:
        account = uow.accounts.add("Dealer One").id
        for n in range(spam.MANY_LEADS_FROM_NETWORK + 10):
            # The first 30 from one address, the rest each from another of its network.
            ip = "203.0.113.5" if n < 30 else f"203.0.113.{100 + n}"
            email = f"bot{n}@mail.test"
            lead = uow.leads.add(book, account, email, "Sam", "Hill", ip, pitch)
            counted.append(uow.behaviour.facts(lead, email, bands))
    assert [c["ip_leads"] for c in counted[:30]] == [
        min(n, spam.MANY_LEADS_FROM_ADDRESS) for n in range(30)]
    assert [c["net_leads"] for c in counted] == [
        min(n, spam.MANY_LEADS_FROM_NETWORK) for n in range(len(counted))]
    assert [c["campaign_senders"] for c in counted] == [
        min(n, spam.MANY_SENDERS) for n in range(len(counted))]
    assert counted[-1]["ip_leads"] == 0
    # Counted so, they still say what they said.
    reasons = [r for r, _ in spam.behaviour(spam.LeadFacts(**counted[29]))]
    assert reasons == [spam.MANY_FROM_ADDRESS, spam.CAMPAIGN_MANY]
    reasons = [r for r, _ in spam.behaviour(spam.LeadFacts(**counted[-1]))]
    assert reasons == [spam.MANY_FROM_NETWORK, spam.CAMPAIGN_MANY]

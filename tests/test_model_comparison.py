"""The challenger against the champion on confirmed cases, checked against values computed by hand,
and its promotion: shown the comparison, confirmed, audited (API and page)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from classifier.models import ModelVersion
from radiology import comparison as comparison_module
from radiology.actions import clinical
from radiology.comparison import compare_with_champion
from radiology.models import AuditEvent, ChallengerPrediction
from tests.factories import ModelVersionFactory, PredictionFactory, UserFactory
from tests.support.api import error_of, token_client

URL = "/api/v1/model-versions/"
STARTED = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)

# (doctor's final label, champion's probability at threshold 0.5, challenger's at threshold 0.4)
#   champion: P P N N | N P N N -> tp 2, fn 2, tn 3, fp 1; accuracy 5/8
#   challenger: P P P N | N N P N -> tp 3, fn 1, tn 3, fp 1; accuracy 6/8
#   labels differ on cases 3, 6 and 7; only the champion is right on 7, only the challenger on 3 and 6
#   AUC by counting pairs: champion 13/16, challenger 15/16
CASES = [
    ("PNEUMONIA", 0.90, 0.80),
    ("PNEUMONIA", 0.60, 0.70),
    ("PNEUMONIA", 0.45, 0.45),
    ("PNEUMONIA", 0.30, 0.35),
    ("NORMAL", 0.20, 0.10),
    ("NORMAL", 0.55, 0.30),
    ("NORMAL", 0.10, 0.42),
    ("NORMAL", 0.40, 0.20),
]


def review_as(doctor, scan, final_label, prediction_label, supersedes=None):
    if final_label == prediction_label:
        return clinical.review_scan(doctor, scan, "confirm", supersedes=supersedes)
    return clinical.review_scan(doctor, scan, "override", "the doctor disagrees", supersedes=supersedes)


def shadow(scan, version, probability, created_at):
    return ChallengerPrediction.objects.create(
        scan=scan,
        model_version=version,
        probability=probability,
        label="PNEUMONIA" if probability >= version.threshold else "NORMAL",
        threshold=version.threshold,
        inference_ms=3.0,
        created_at=created_at,
    )


@pytest.fixture
def challenge(doctor, loadable_files):
    """The eight CASES (half checked within intended use, half predicted before the check existed),
    plus scans that must not count: unreviewed, champion only, predicted by the challenger before its
    challenge began, outside the intended use, and one by an earlier champion."""
    earlier = ModelVersionFactory(version="v0", threshold=0.5)
    champion = ModelVersionFactory(version="v1", threshold=0.5, is_active=True)
    challenger = ModelVersionFactory(version="v2", threshold=0.4, **loadable_files)
    challenger.start_challenge()
    ModelVersion.objects.filter(pk=challenger.pk).update(challenger_since=STARTED)
    challenger.refresh_from_db()
    after = STARTED + timedelta(hours=1)
    scans = []
    for i, (final_label, champion_p, challenger_p) in enumerate(CASES):
        prediction = PredictionFactory(
            model_version=champion,
            probability=champion_p,
            scan__uploaded_at=after + timedelta(minutes=i),
            intended_use={"within": True, "reasons": [], "score": 0.5} if i % 2 else None,
        )
        shadow(prediction.scan, challenger, challenger_p, after + timedelta(minutes=i))
        first = None
        if i == 4:  # first reviewed wrongly, then corrected: the latest review is the truth
            first = review_as(doctor, prediction.scan, "PNEUMONIA", prediction.label)
        review_as(doctor, prediction.scan, final_label, prediction.label, supersedes=first)
        scans.append(prediction.scan)

    unreviewed = PredictionFactory(model_version=champion, probability=0.9, scan__uploaded_at=after)
    shadow(unreviewed.scan, challenger, 0.1, after)
    champion_only = PredictionFactory(model_version=champion, probability=0.9, scan__uploaded_at=after)
    clinical.review_scan(doctor, champion_only.scan, "confirm")
    before_start = PredictionFactory(model_version=champion, probability=0.9, scan__uploaded_at=after)
    shadow(before_start.scan, challenger, 0.1, STARTED - timedelta(days=1))
    clinical.review_scan(doctor, before_start.scan, "confirm")
    outside_use = PredictionFactory(
        model_version=champion,
        probability=0.9,
        scan__uploaded_at=after,
        intended_use={"within": False, "reasons": ["age"], "score": 1.0},
    )
    shadow(outside_use.scan, challenger, 0.1, after)
    clinical.review_scan(doctor, outside_use.scan, "confirm")
    by_earlier = PredictionFactory(model_version=earlier, probability=0.9, scan__uploaded_at=after - timedelta(days=1))
    shadow(by_earlier.scan, challenger, 0.1, after)
    clinical.review_scan(doctor, by_earlier.scan, "confirm")
    return champion, challenger, scans


def test_the_comparison_equals_the_hand_computed_values(challenge):
    champion, challenger, scans = challenge

    result = compare_with_champion(challenger)

    assert result["n"] == 8 and result["disagreements"] == 3
    assert (result["only_champion_correct"], result["only_challenger_correct"]) == (1, 2)
    assert result["mcnemar_p"] == 1.0  # 2 * (C(3,0) + C(3,1)) / 2**3
    assert result["delong_p"] == pytest.approx(0.4795, abs=1e-4)
    first, second = result["champion"], result["challenger"]
    assert (first["version"], first["threshold"], second["version"], second["threshold"]) == ("v1", 0.5, "v2", 0.4)
    assert first["confusion_matrix"] == [[3, 1], [2, 2]] and second["confusion_matrix"] == [[3, 1], [1, 3]]
    expected = {
        # value, Wilson (proportions) or DeLong (AUC) 95 % interval
        (0, "accuracy"): (0.625, 0.3057, 0.8632),
        (0, "sensitivity"): (0.5, 0.1500, 0.8500),
        (0, "specificity"): (0.75, 0.3006, 0.9544),
        (0, "auc"): (0.8125, 0.4808, 1.0),
        (1, "accuracy"): (0.75, 0.4093, 0.9285),
        (1, "sensitivity"): (0.75, 0.3006, 0.9544),
        (1, "specificity"): (0.75, 0.3006, 0.9544),
        (1, "auc"): (0.9375, 0.7643, 1.0),
    }
    for (index, metric), values in expected.items():
        estimate = (first, second)[index][metric]
        assert (estimate["value"], estimate["low"], estimate["high"]) == pytest.approx(values, abs=1e-4), metric

    # The cases: the most recent scan first; each label follows its own version's threshold.
    assert [c["scan"] for c in result["cases"]] == [scan.pk for scan in reversed(scans)]
    for case, (final_label, champion_p, challenger_p) in zip(reversed(result["cases"]), CASES, strict=True):
        assert case["final_label"] == final_label
        assert case["champion"] == {"probability": champion_p, "label": "PNEUMONIA" if champion_p >= 0.5 else "NORMAL"}
        assert case["challenger"] == {
            "probability": challenger_p,
            "label": "PNEUMONIA" if challenger_p >= 0.4 else "NORMAL",
        }
    assert result["cases_truncated"] is False


def test_the_cases_are_capped_and_say_so(challenge, monkeypatch):
    monkeypatch.setattr(comparison_module, "CASES_SHOWN", 3)
    result = compare_with_champion(challenge[1])
    assert result["n"] == 8 and len(result["cases"]) == 3
    assert result["cases_truncated"] is True and result["cases_limit"] == 3


@pytest.mark.django_db
def test_no_cases_yet_gives_no_figures():
    challenger = ModelVersionFactory(version="v2")
    challenger.start_challenge()
    result = compare_with_champion(challenger)
    assert result["n"] == 0 and result["cases"] == [] and result["champion"]["version"] is None
    assert result["challenger"]["accuracy"] == {"value": None, "low": None, "high": None}
    assert result["mcnemar_p"] is None and result["delong_p"] is None


def test_the_api_serves_the_comparison_to_admins_only(challenge, admin_user, doctor):
    challenger = challenge[1]
    answer = token_client(admin_user).get(f"{URL}{challenger.pk}/comparison/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["n"] == 8 and body["disagreements"] == 3 and len(body["cases"]) == 8
    assert body["challenger"]["accuracy"]["value"] == 0.75 and body["champion"]["auc"]["value"] == 0.8125
    assert set(body["cases"][0]) == {"scan", "uploaded_at", "final_label", "champion", "challenger"}
    assert token_client(doctor).get(f"{URL}{challenger.pk}/comparison/").status_code == 403


@pytest.mark.django_db
def test_a_version_never_challenger_has_no_comparison(admin_user):
    version = ModelVersionFactory(version="v9")
    answer = token_client(admin_user).get(f"{URL}{version.pk}/comparison/")
    assert answer.status_code == 404
    assert "never been the challenger" in error_of(answer)["message"]


def test_promotion_over_the_api_needs_confirmation_and_is_audited(challenge, admin_user):
    champion, challenger, _ = challenge
    client = token_client(admin_user)

    unconfirmed = client.post(f"{URL}{challenger.pk}/promote/", {"confirm": False}, format="json")

    assert unconfirmed.status_code == 400 and "confirm" in error_of(unconfirmed)["fields"]
    assert "Read the comparison" in error_of(unconfirmed)["fields"]["confirm"][0]
    unsent = client.post(f"{URL}{challenger.pk}/promote/", {}, format="json")
    assert unsent.status_code == 400 and "Read the comparison" in error_of(unsent)["fields"]["confirm"][0]
    assert ModelVersion.active() == champion and ModelVersion.challenger() == challenger

    promoted = client.post(f"{URL}{challenger.pk}/promote/", {"confirm": True}, format="json")

    assert promoted.status_code == 200
    body = promoted.json()
    assert body["model_version"]["is_active"] is True and body["model_version"]["is_challenger"] is False
    assert body["comparison"]["n"] == 8
    assert ModelVersion.active() == challenger and ModelVersion.challenger() is None
    event = AuditEvent.objects.get(action="model_version.promoted", object_id=str(challenger.pk))
    assert event.actor == admin_user
    assert event.before == {"active": "v1", "challenger": "v2"}
    assert event.after["active"] == "v2" and event.after["comparison"]["n"] == 8
    assert event.after["comparison"]["challenger"]["accuracy"]["value"] == 0.75
    assert "cases" not in event.after["comparison"]
    # Promoted, it is no challenger any more: a second promotion is refused.
    again = client.post(f"{URL}{challenger.pk}/promote/", {"confirm": True}, format="json")
    assert again.status_code == 409 and "not the challenger" in error_of(again)["message"]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["doctor", "radiographer"])
def test_other_roles_cannot_promote(role, loadable_files):
    challenger = ModelVersionFactory(**loadable_files)
    challenger.start_challenge()
    client = token_client(UserFactory(role=role))
    assert client.post(f"{URL}{challenger.pk}/promote/", {"confirm": True}, format="json").status_code == 403
    assert ModelVersion.challenger() == challenger


def test_the_page_shows_the_comparison_and_promotes_on_confirmation(challenge, admin_role_client, admin_user):
    champion, challenger, scans = challenge
    page = admin_role_client.get(reverse("model_comparison", args=[challenger.pk])).content.decode()

    assert '<span id="compared-count">8</span>' in page
    assert "0.625" in page and "0.750" in page and "0.813" in page and "0.938" in page
    assert '<dd id="disagreements">3</dd>' in page
    for i in (2, 5, 6):  # the disagreements, linked for a doctor to look at
        assert reverse("review", args=[scans[i].pk]) in page
    assert reverse("review", args=[scans[0].pk]) not in page
    assert reverse("promote_challenger", args=[challenger.pk]) in page and 'name="confirm"' in page

    refused = admin_role_client.post(reverse("promote_challenger", args=[challenger.pk]), follow=True)
    assert "confirm the promotion" in refused.content.decode()
    assert ModelVersion.active() == champion

    admin_role_client.post(reverse("promote_challenger", args=[challenger.pk]), {"confirm": "yes"})
    assert ModelVersion.active() == challenger
    assert AuditEvent.objects.filter(action="model_version.promoted", actor=admin_user).count() == 1

"""The maintained summaries of reviewed scans and predictions that the dashboard aggregates.

ReviewOutcome: one row per reviewed scan. `refresh_review_outcome` rewrites one scan's row from its
prediction and reviews (inside the review transaction); `rebuild_review_outcomes` recomputes every
row the same way. Both go through `computed_outcomes`, so a maintained row always equals a full
recomputation.

The weekly summary (ReviewWeek, ReviewWeekScore, ReviewWeekTurnaround): what each within-use
ReviewOutcome row adds to it is `tallies`. `refresh_review_outcome` subtracts the old row's tallies
and adds the new row's, in the same transaction, as increments the database applies (INSERT ... ON
CONFLICT DO UPDATE SET n = n + excluded.n), so that concurrent reviews add up without reading the
counts first; `rebuild_review_summary` sums the tallies of every row afresh. The summary is exact
for counts and turnaround means; it keeps probabilities in bins of width 1/SCORE_BINS and
turnarounds rounded to two significant digits, so the AUC, the reliability view and the turnaround
percentiles are those of the binned values.

PredictionWeek: the predictions' weekly counts behind the flagged figures, `prediction_tallies` of
each prediction, moved by `refresh_prediction_week` when Prediction.save() writes one and summed
afresh by `rebuild_prediction_summary`, the same way.
"""

import datetime

from django.db import connection, transaction
from django.db.models import F, Min, OuterRef, Subquery
from django.utils import timezone

from radiology.models import (
    Label,
    Prediction,
    PredictionWeek,
    Review,
    ReviewOutcome,
    ReviewWeek,
    ReviewWeekScore,
    ReviewWeekTurnaround,
    Scan,
)

REBUILD_BATCH = 5000
SCORE_BINS = 1000  # probability bins of width 0.001
MEASURES = ReviewWeekTurnaround.Measure.values
SUMMARY_MODELS = {
    "cell": ReviewWeek,
    "score": ReviewWeekScore,
    "turnaround": ReviewWeekTurnaround,
    "prediction": PredictionWeek,
}
REVIEW_SUMMARY = ("cell", "score", "turnaround")


def computed_outcomes(scans, review_model=Review, outcome_model=ReviewOutcome):
    """ReviewOutcome objects (unsaved) for the reviewed, predicted scans among `scans`.

    The models are parameters so that a migration can run this on its historical models.
    """
    latest_review = review_model.objects.filter(scan=OuterRef("pk")).order_by("-created_at", "-pk")
    # The migration that created the table ran before predictions had an intended-use check.
    checks_use = any(field.name == "within_intended_use" for field in outcome_model._meta.get_fields())
    rows = (
        scans.filter(prediction__isnull=False, reviews__isnull=False)
        .annotate(
            final_label=Subquery(latest_review.values("final_label")[:1]), first_reviewed_at=Min("reviews__created_at")
        )
        .order_by("pk")
        .values_list(
            "pk",
            "uploaded_at",
            "prediction__model_version_id",
            "prediction__probability",
            "prediction__threshold",
            "prediction__label",
            "prediction__created_at",
            "final_label",
            "first_reviewed_at",
            "prediction__intended_use" if checks_use else "pk",
        )
    )
    for (
        scan_id,
        uploaded_at,
        version_id,
        probability,
        threshold,
        label,
        predicted_at,
        final_label,
        reviewed_at,
        intended_use,
    ) in rows.iterator(chunk_size=REBUILD_BATCH):
        within = {"within_intended_use": not isinstance(intended_use, dict) or intended_use.get("within", True)}
        yield outcome_model(
            **(within if checks_use else {}),
            scan_id=scan_id,
            model_version_id=version_id,
            uploaded_at=uploaded_at,
            probability=probability,
            threshold=threshold,
            predicted_positive=label == Label.PNEUMONIA,
            actual_positive=final_label == Label.PNEUMONIA,
            upload_to_prediction_s=(predicted_at - uploaded_at).total_seconds(),
            prediction_to_review_s=(reviewed_at - predicted_at).total_seconds(),
        )


def refresh_review_outcome(scan_id):
    """Rewrite one scan's row (none when it has no review or no prediction) and move its tallies in the
    weekly summary. Call inside the transaction that changed its reviews, so that the summaries
    commit with them."""
    deltas = {}
    for outcome in ReviewOutcome.objects.filter(scan_id=scan_id):
        add_tallies(deltas, tallies(outcome), -1)
    ReviewOutcome.objects.filter(scan_id=scan_id).delete()
    for outcome in computed_outcomes(Scan.objects.filter(pk=scan_id)):
        outcome.save(force_insert=True)
        add_tallies(deltas, tallies(outcome))
    apply_to_summary(deltas)


def rebuild_review_outcomes(scans=None, review_model=Review, outcome_model=ReviewOutcome):
    """Recompute every row from scratch; returns how many reviewed scans there are."""
    scans = Scan.objects.all() if scans is None else scans
    count = 0
    with transaction.atomic():
        outcome_model.objects.all().delete()
        batch = []
        for outcome in computed_outcomes(scans, review_model, outcome_model):
            batch.append(outcome)
            if len(batch) == REBUILD_BATCH:
                outcome_model.objects.bulk_create(batch)
                count += len(batch)
                batch = []
        outcome_model.objects.bulk_create(batch)
    return count + len(batch)


# --- the weekly summary -----------------------------------------------------------------------------


def week_of(uploaded_at):
    """The Monday of the upload's week, in the site's time zone."""
    day = timezone.localdate(uploaded_at)
    return day - datetime.timedelta(days=day.weekday())


def score_bin(probability):
    """The probability's bin: [k / SCORE_BINS, (k + 1) / SCORE_BINS), the last one closed."""
    return min(int(probability * SCORE_BINS), SCORE_BINS - 1)


def binned_seconds(seconds):
    """A turnaround rounded to two significant digits (within 5 %): the percentiles' resolution."""
    return float(f"{seconds:.2g}")


def microseconds(seconds):
    """A ReviewOutcome duration (a timedelta's seconds) back in the whole microseconds it came from."""
    return round(seconds * 1_000_000)


def tallies(outcome):
    """[(summary table, key, increments)] that one ReviewOutcome row adds to the weekly summary; none
    outside intended use. Keys and increments are field names (attnames) and values."""
    if not outcome.within_intended_use:
        return []
    week = {"model_version_id": outcome.model_version_id, "week": week_of(outcome.uploaded_at)}
    actual = int(outcome.actual_positive)
    return [
        (
            "cell",
            {
                **week,
                "threshold": outcome.threshold,
                "actual_positive": outcome.actual_positive,
                "predicted_positive": outcome.predicted_positive,
            },
            {
                "n": 1,
                **{f"{measure}_us": microseconds(getattr(outcome, f"{measure}_s")) for measure in MEASURES},
            },
        ),
        (
            "score",
            {**week, "score_bin": score_bin(outcome.probability)},
            {"positives": actual, "negatives": 1 - actual},
        ),
        *(
            (
                "turnaround",
                {**week, "measure": measure, "seconds": binned_seconds(getattr(outcome, f"{measure}_s"))},
                {"n": 1},
            )
            for measure in MEASURES
        ),
    ]


def add_tallies(totals, counted, sign=1):
    """Adds (sign 1) or takes back (sign -1) tallies (of `tallies` or `prediction_tallies`) into
    {(table, key items): increments}."""
    for table, key, increments in counted:
        summed = totals.setdefault((table, tuple(key.items())), dict.fromkeys(increments, 0))
        for name, value in increments.items():
            summed[name] += sign * value


def apply_to_summary(deltas):
    """Adds each delta to its summary row in the database. A delta that takes something away applies
    to a row the old outcome counted in (an UPDATE with F(); the row goes when it falls to zero); one
    that only adds creates its row when missing (INSERT ... ON CONFLICT DO UPDATE: PostgreSQL checks
    the inserted values, so a negative count cannot go through it). Rows are taken in one fixed order,
    so two transactions never wait on each other in a cycle."""
    for (table, key), increments in sorted(deltas.items(), key=lambda item: (item[0][0], repr(item[0][1]))):
        model, key = SUMMARY_MODELS[table], dict(key)
        if any(value < 0 for value in increments.values()):
            model.objects.filter(**key).update(**{name: F(name) + value for name, value in increments.items()})
            model.objects.filter(**key, **dict.fromkeys(increments, 0)).delete()
        elif any(increments.values()):
            add_or_create(model, key, increments)


def add_or_create(model, key, increments):
    """INSERT ... ON CONFLICT (key) DO UPDATE SET count = count + excluded.count (PostgreSQL and SQLite)."""
    fields = {field.attname: field for field in model._meta.concrete_fields}
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    values = [fields[name].get_db_prep_value(value, connection) for name, value in (*key.items(), *increments.items())]
    # Table and column names from the model, the values as parameters.
    inserted = ", ".join(quote(fields[name].column) for name in (*key, *increments))
    conflict = ", ".join(quote(fields[name].column) for name in key)
    marks = ", ".join(["%s"] * len(values))
    updates = ", ".join(f"{column} = {table}.{column} + excluded.{column}" for column in map(quote, increments))
    statement = f"INSERT INTO {table} ({inserted}) VALUES ({marks}) ON CONFLICT ({conflict}) DO UPDATE SET {updates}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(statement, values)


def rebuild_review_summary(outcome_model=ReviewOutcome, summary_models=None):
    """The weekly summary summed afresh from every ReviewOutcome row; returns how many rows it has.

    The models are parameters so that a migration can run this on its historical models."""
    summary_models = summary_models or {table: SUMMARY_MODELS[table] for table in REVIEW_SUMMARY}
    totals = {}
    for outcome in outcome_model.objects.filter(within_intended_use=True).iterator(chunk_size=REBUILD_BATCH):
        add_tallies(totals, tallies(outcome))
    with transaction.atomic():
        for model in summary_models.values():
            model.objects.all().delete()
        for table, model in summary_models.items():
            model.objects.bulk_create(
                (model(**dict(key), **increments) for (kind, key), increments in totals.items() if kind == table),
                batch_size=REBUILD_BATCH,
            )
    return len(totals)


# --- the predictions' weekly counts -----------------------------------------------------------------


def prediction_tallies(model_version_id, uploaded_at, intended_use):
    """[(table, key, increments)] that one prediction adds to PredictionWeek."""
    flagged = isinstance(intended_use, dict) and intended_use.get("within") is False
    counted = ["predicted"]
    if intended_use is None:
        counted.append("unchecked")
    if flagged:
        counted += ["flagged", *(f"flagged:{reason}" for reason in sorted(set(intended_use.get("reasons") or [])))]
    week = {"model_version_id": model_version_id, "week": week_of(uploaded_at)}
    return [("prediction", {**week, "counted": name}, {"n": 1}) for name in counted]


def refresh_prediction_week(prediction, save):
    """Runs `save` (the prediction's row written) and moves the prediction's counts from what the
    database held before to what it holds now. Call inside a transaction."""
    deltas = {}
    before = (
        Prediction.objects.filter(pk=prediction.pk)
        .values_list("model_version_id", "scan__uploaded_at", "intended_use")
        .first()
        if prediction.pk is not None
        else None
    )
    if before is not None:
        add_tallies(deltas, prediction_tallies(*before), -1)
    save()
    add_tallies(
        deltas, prediction_tallies(prediction.model_version_id, prediction.scan.uploaded_at, prediction.intended_use)
    )
    apply_to_summary(deltas)


def rebuild_prediction_summary(prediction_model=Prediction, week_model=PredictionWeek):
    """PredictionWeek counted afresh from every prediction; returns how many rows it has. The models
    are parameters so that a migration can run this on its historical models."""
    totals = {}
    rows = prediction_model.objects.values_list("model_version_id", "scan__uploaded_at", "intended_use")
    for row in rows.iterator(chunk_size=REBUILD_BATCH):
        add_tallies(totals, prediction_tallies(*row))
    with transaction.atomic():
        week_model.objects.all().delete()
        week_model.objects.bulk_create(
            (week_model(**dict(key), **increments) for (_, key), increments in totals.items()), batch_size=REBUILD_BATCH
        )
    return len(totals)

"""Screen counting (docs/screen.md §1): the screen set, the report-level drug
and event sets, their margins, the pairs, the expected counts, and the
frequentist statistics of every pair — pure ``DataFrame -> DataFrame``
transforms, Spark SQL only (the special functions are :mod:`.mgps`, in Arrow
batches).

Counts are of distinct reports, never of rows. Nothing here brings data to
the driver but N (one number); N per stratum (a few hundred rows at most) is
broadcast to the executors.
"""

from __future__ import annotations

from typing import NamedTuple

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from faerslake.config import Screen
from faerslake.gold.strata import age_band, sex_stratum
from faerslake.normalise import clean_code
from faerslake.quarters import quarter_range
from faerslake.stats import Z95

KEYS = ["report_key", "quarter"]
# the drug key of a screen -> the column of silver/drugs (or drug_ingredients) it reads
KEY_COLUMNS = {"drugname": "drugname_norm", "prod_ai": "prod_ai_norm", "ingredient": "ingredient"}
# the pair table's columns, in order (the contract's, then the margins)
PAIR_COLUMNS = ["drug", "pt", "a", "b", "c", "d", "expected", "n_drug", "n_event", "n_reports"]
FREQUENTIST_COLUMNS = ["ror", "ror_ci_lower", "ror_ci_upper", "haldane_corrected", "prr", "prr_ci_lower",
                       "prr_ci_upper", "chi2_yates", "evans_signal"]


class ScreenSets(NamedTuple):
    """The screen set R with its strata, and its distinct (report, drug) and
    (report, pt) rows (each with the report's strata)."""

    reports: DataFrame   # report_key, quarter, <strata>
    drugs: DataFrame     # report_key, quarter, drug, <strata>
    events: DataFrame    # report_key, quarter, pt, <strata>
    strata: list[str]


def stratum_columns(strata: list[str]) -> list[Column]:
    """The strata of a report (spec §1): sex M/F/U, the study's age bands, the
    year of the report's quarter."""
    make = {"sex": sex_stratum, "age_band": age_band, "year": lambda: F.substring("quarter", 1, 4)}
    return [make[s]().alias(f"s_{s}") for s in strata]


def counted_drug_rows(drugs: DataFrame, screen: Screen, key: str) -> DataFrame:
    """Distinct ``report_key, quarter, drug`` of the counted drug rows: role
    code in the screen's ``roles`` (every row when unset, one without a role
    code too; with ``roles`` set such a row never counts), drug key neither
    null nor empty. ``drugs`` is
    ``silver/drugs`` or, for the ``ingredient`` key, ``silver/drug_ingredients``
    (an unresolved row's ingredient is null: not counted)."""
    value = F.col(KEY_COLUMNS[key])
    rows = drugs.where(value.isNotNull() & (F.trim(value) != ""))
    if screen.roles is not None:
        rows = rows.where(F.coalesce(clean_code("role_cod").isin(list(screen.roles)), F.lit(False)))
    return rows.select(*KEYS, value.alias("drug")).distinct()


def event_rows(reactions: DataFrame) -> DataFrame:
    """Distinct ``report_key, quarter, pt`` of the REAC rows with a PT."""
    pt = F.col("pt_norm")
    return reactions.where(pt.isNotNull() & (pt != "")).select(*KEYS, pt.alias("pt")).distinct()


def screen_sets(reports: DataFrame, drugs: DataFrame, reactions: DataFrame, screen: Screen, key: str) -> ScreenSets:
    """R (spec §1): the kept reports (of the screen's period) with at least one
    counted drug row and at least one PT, and their drug and event sets."""
    period = quarter_range(screen.period)
    rep = reports if period is None else reports.where(F.col("quarter").isin(period))
    rep = rep.select(*KEYS, *stratum_columns(screen.stratify))
    drug_set = counted_drug_rows(drugs, screen, key)
    event_set = event_rows(reactions)
    r = (rep.join(drug_set.select(*KEYS).distinct(), KEYS, "left_semi")
         .join(event_set.select(*KEYS).distinct(), KEYS, "left_semi"))
    strata = [f"s_{s}" for s in screen.stratify]
    return ScreenSets(r, drug_set.join(r, KEYS), event_set.join(r, KEYS), strata)


def pair_counts(sets: ScreenSets, n_reports: int) -> DataFrame:
    """Every pair with a >= 1: ``drug, pt, a, b, c, d, expected, n_drug,
    n_event, n_reports`` (spec §1). ``n_reports`` is N = |R|; with strata,
    ``expected`` = Σ_s n_x,s · n_y,s / N_s over the strata both occur in (the
    others add 0)."""
    pairs = (sets.drugs.select(*KEYS, "drug").join(sets.events.select(*KEYS, "pt"), KEYS)
             .groupBy("drug", "pt").agg(F.count(F.lit(1)).alias("a")))
    n_drug = sets.drugs.groupBy("drug").agg(F.count(F.lit(1)).alias("n_drug"))
    n_event = sets.events.groupBy("pt").agg(F.count(F.lit(1)).alias("n_event"))
    n = F.lit(n_reports).cast("long")
    out = pairs.join(n_drug, "drug").join(n_event, "pt")
    if sets.strata:
        s = sets.strata
        n_s = sets.reports.groupBy(*s).agg(F.count(F.lit(1)).alias("n_s"))
        x_s = sets.drugs.groupBy("drug", *s).agg(F.count(F.lit(1)).alias("x_s"))
        y_s = sets.events.groupBy("pt", *s).agg(F.count(F.lit(1)).alias("y_s"))
        expected = (pairs.select("drug", "pt").join(x_s, "drug").join(y_s, ["pt", *s])
                    .join(F.broadcast(n_s), s)
                    .groupBy("drug", "pt")
                    .agg(F.sum(F.col("x_s").cast("double") * F.col("y_s") / F.col("n_s")).alias("expected")))
        out = out.join(expected, ["drug", "pt"])
    else:
        out = out.withColumn("expected", F.col("n_drug").cast("double") * F.col("n_event") / n)
    a, nx, ny = F.col("a"), F.col("n_drug"), F.col("n_event")
    return out.select(
        "drug", "pt", a.cast("long").alias("a"), (nx - a).cast("long").alias("b"), (ny - a).cast("long").alias("c"),
        (n - nx - ny + a).cast("long").alias("d"), "expected", nx.cast("long").alias("n_drug"),
        ny.cast("long").alias("n_event"), n.alias("n_reports"))


def with_frequentist(pairs: DataFrame, z: float = Z95) -> DataFrame:
    """The pairs with ROR (Haldane-corrected when a cell is 0, null when a
    whole row or column is 0), PRR and its CI (null when c = 0), Yates' χ²
    (null when a margin is 0) and Evans' signal (spec §2), as Spark columns."""
    a, b, c, d = (F.col(x).cast("double") for x in "abcd")
    degenerate = ((a + b) == 0) | ((c + d) == 0) | ((a + c) == 0) | ((b + d) == 0)
    haldane = ~degenerate & (F.least(a, b, c, d) == 0)
    k = F.when(haldane, F.lit(0.5)).otherwise(F.lit(0.0))
    fa, fb, fc, fd = a + k, b + k, c + k, d + k
    log_ror = F.log(fa) - F.log(fb) - F.log(fc) + F.log(fd)
    se = F.sqrt(1 / fa + 1 / fb + 1 / fc + 1 / fd)

    def unless_degenerate(x: Column) -> Column:
        return F.when(~degenerate, x)

    prr_ok = c > 0
    prr = (a / (a + b)) / (c / (c + d))
    prr_se = F.sqrt(1 / a - 1 / (a + b) + 1 / c - 1 / (c + d))
    n = a + b + c + d
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    chi2 = F.when(margins > 0, n * F.pow(F.abs(a * d - b * c) - n / 2, 2) / margins)
    prr_col = F.when(prr_ok, prr)
    return pairs.select(
        "*",
        unless_degenerate(F.exp(log_ror)).alias("ror"),
        unless_degenerate(F.exp(log_ror - z * se)).alias("ror_ci_lower"),
        unless_degenerate(F.exp(log_ror + z * se)).alias("ror_ci_upper"),
        haldane.alias("haldane_corrected"),
        prr_col.alias("prr"),
        F.when(prr_ok, F.exp(F.log(prr) - z * prr_se)).alias("prr_ci_lower"),
        F.when(prr_ok, F.exp(F.log(prr) + z * prr_se)).alias("prr_ci_upper"),
        chi2.alias("chi2_yates"),
        F.coalesce((prr_col >= 2) & (chi2 >= 4) & (a >= 3), F.lit(False)).alias("evans_signal"),
    )


def squashed_points(pairs: DataFrame, n_star: int, bins_per_decade: int) -> DataFrame:
    """The prior fit's data (spec §2, squashing): pairs with a >= ``n_star``,
    binned within each a by log10(E) in bins 1/``bins_per_decade`` wide; a
    point is (a, the mean E of its bin, the bin's pair count). Its size is
    bounded by (distinct a) × (bins over E's range), not by the pairs."""
    e = F.col("expected")
    return (pairs.where(F.col("a") >= n_star)
            .groupBy("a", F.floor(F.log10(e) * bins_per_decade).alias("bin"))
            .agg(F.avg(e).alias("e"), F.count(F.lit(1)).alias("w"))
            .select("a", "e", "w"))

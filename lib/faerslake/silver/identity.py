"""Drug identity (issue #16): every silver/drugs row -> its active ingredient(s).

``silver/drug_ingredients`` holds one row per (drug row, ingredient); a drug
row the rules cannot resolve keeps one row with a null ingredient and method
``unresolved``. The resolution order per drug row (docs/drug-identity.md):

1. ``prod_ai`` (FAERS from 2014Q3): split on FDA's ``\\`` only, each part
   folded to its active moiety (:func:`fold_moiety`) -> method ``prod_ai``.
2. The lake's own knowledge -> method ``learned_name``: a dictionary learned
   from the rows that carry both a drugname and a prod_ai
   (:func:`learn_dictionary`, minimum support and agreement share), and the
   ingredients themselves (a name that is, after folding, an ingredient seen
   in some prod_ai is that ingredient). A name is looked up through its
   candidate keys (:func:`with_name_candidates`): the whole cleaned name, the
   ingredient part of ``BRAND//INGREDIENT``, ``BRAND (INGREDIENT)`` and
   ``BRAND [INGREDIENT]``, the name without strengths and dosage-form
   words, its Latin / Romance INN ending made English (``PANTOPRAZOLUM``,
   ``AMLODIPINA`` -> the ingredient, only when that ingredient is known),
   and a combination written with ``;`` ``/`` ``+`` `` AND `` `` W/ `` whose
   every part is a known ingredient.
3. The curated table shipped in ``resources/drug_ingredients.csv`` (brand
   names and INN spellings, each line with its public source) -> ``curated``;
   the same candidate keys are looked up in it (and in the lake's knowledge,
   for the parts of a combination). ``identity.curated: false`` switches it off.
4. Otherwise ``unresolved``: kept, never dropped.

Everything is Spark SQL functions (no Python UDF); names are resolved once per
distinct ``drugname_norm`` and joined back to the rows; the dictionary,
ingredient list and curated table are small and broadcast.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from faerslake.files import atomic_write_csv
from faerslake.normalise import _c
from faerslake.quarters import era_of, quarter_sort_key

PROD_AI = "prod_ai"
LEARNED = "learned_name"
CURATED = "curated"
UNRESOLVED = "unresolved"
METHODS = (PROD_AI, LEARNED, CURATED, UNRESOLVED)
# the silver tables this step writes (silver/job.py)
IDENTITY_TABLES = ["drug_ingredients", "drug_dictionary", "drug_identity"]

# --------------------------------------------------------------------------- #
# the fold rule list
# --------------------------------------------------------------------------- #
# Words naming a salt, an ester or a hydrate: removed from an ingredient when
# what remains still holds a word that is neither one of these nor one of
# MINERAL_WORDS (so SODIUM CHLORIDE, CALCIUM CARBONATE, POTASSIUM CITRATE stay
# whole). Whole words only; a biologic's suffix (ONABOTULINUMTOXINA, INSULIN
# GLARGINE, PEGFILGRASTIM) is never one of them. Esters are folded as FDA's
# "active moiety" definition does (21 CFR 314.3: the molecule excluding the
# parts that make it an ester, salt or other noncovalent derivative);
# ACETONIDE (a ketal) and the -MAB / -CEPT words are not folded.
SALT_WORDS: tuple[str, ...] = (
    # cations and bases
    "SODIUM", "DISODIUM", "TRISODIUM", "MONOSODIUM", "POTASSIUM", "DIPOTASSIUM", "CALCIUM", "MAGNESIUM",
    "NATRIUM", "KALIUM",  # German / Latin names of sodium and potassium (DICLOFENAC NATRIUM)
    "MEGLUMINE", "TROMETHAMINE", "TROMETAMOL", "OLAMINE", "DIOLAMINE", "ERBUMINE",
    # acids (anions)
    "HYDROCHLORIDE", "DIHYDROCHLORIDE", "MONOHYDROCHLORIDE", "HCL", "HYDROBROMIDE", "HBR", "HYDROIODIDE",
    "CHLORIDE", "BROMIDE", "IODIDE",
    "BESYLATE", "BESILATE", "MESYLATE", "MESILATE", "DIMESYLATE", "TOSYLATE", "TOSILATE", "EDISYLATE",
    "NAPSYLATE", "ISETHIONATE",
    "MALEATE", "HEMIFUMARATE", "FUMARATE", "SUCCINATE", "TARTRATE", "BITARTRATE", "HEMITARTRATE",
    "CITRATE", "ACETATE", "DIACETATE", "LACTATE", "GLUCONATE", "GLUCEPTATE",
    "SULFATE", "SULPHATE", "BISULFATE", "HEMISULFATE", "PHOSPHATE", "DIPHOSPHATE", "NITRATE", "CARBONATE",
    "MALATE", "OXALATE", "PAMOATE", "EMBONATE", "STEARATE", "XINAFOATE", "HYCLATE", "LYSINATE",
    "ASPARTATE", "SACCHARATE", "DITOSYLATE",
    # esters
    "PROPIONATE", "DIPROPIONATE", "VALERATE", "BUTYRATE", "FUROATE", "ENANTHATE", "ENANTATE", "CYPIONATE",
    "DECANOATE", "UNDECANOATE", "PALMITATE", "MOFETIL", "PIVOXIL", "AXETIL", "MEDOXOMIL", "CILEXETIL",
    "DISOPROXIL", "ETEXILATE", "ETABONATE", "PROXETIL", "ACEPONATE",
    # hydrates
    "MONOHYDRATE", "DIHYDRATE", "TRIHYDRATE", "TETRAHYDRATE", "PENTAHYDRATE", "HEXAHYDRATE",
    "HEPTAHYDRATE", "SESQUIHYDRATE", "HEMIHYDRATE", "ANHYDROUS",
)
# Words of inorganic salts and minerals: never removed, and not enough on
# their own to be a moiety (FERROUS SULFATE, ZINC SULFATE, LITHIUM CARBONATE,
# MAGNESIUM OXIDE stay whole, so two minerals are never merged).
MINERAL_WORDS: tuple[str, ...] = (
    "FERROUS", "FERRIC", "IRON", "ZINC", "LITHIUM", "ALUMINUM", "ALUMINIUM", "SILVER", "BARIUM", "STRONTIUM",
    "COPPER", "CUPRIC", "SELENIUM", "CHROMIUM", "CHROMIC", "BISMUTH", "AMMONIUM", "MANGANESE", "COBALT",
    "GOLD", "LANTHANUM", "OXIDE", "HYDROXIDE", "PEROXIDE", "FLUORIDE", "BICARBONATE", "TRISILICATE",
    "HYDROGEN", "DIBASIC", "MONOBASIC", "TRIBASIC", "DIHYDROGEN", "ACID", "CHLORATE", "SULFIDE",
    "THIOSULFATE", "SILICATE",
)
# prod_ai texts that mean "no prod_ai" (re-saved samples write NA for empty)
NO_PROD_AI: tuple[str, ...] = ("NA", "N/A", "NULL", "NONE", "UNKNOWN")

# Strength and dosage-form words dropped from a name (candidate key "bare").
_STRENGTH = (r"(\b|(?<=[A-Z]))\d+([.,]\d+)?\s*(MG/ML|MCG/ML|MG/G|MG|MCG|UG|GM|G|ML|L|IU|UNITS?|MEQ|MMOL|HOURS?)\b"
             r"|\b\d+([.,]\d+)?\s*%|\b\d+([.,]\d+)?\b")
_FORM_WORDS = (
    "TABLETS?", "TABS?", "CAPSULES?", "CAPS?", "CREAM", "OINTMENT", "GEL", "LOTION", "EYE DROPS", "EAR DROPS",
    "DROPS", "INJECTION", "INJECTABLE", "INFUSION", "SOLUTION", "SUSPENSION", "SYRUP", "ELIXIR", "POWDER",
    "SPRAY", "NASAL", "INHALER", "INHALATION", "INHALATORY", "PATCH", "TRANSDERMAL", "SYSTEM", "ORAL",
    "TOPICAL", "OPHTHALMIC", "AEROSOL", "HFA", "MDI", "SUPPOSITORY", "SUPPOSITORIES", "FILM COATED", "FILM", "COATED", "ER", "XR",
    "SR", "CR", "XL", "LA", "DR", "ODT", "EC", "DELAYED RELEASE", "EXTENDED RELEASE", "SLOW RELEASE",
    "PREFILLED SYRINGE", "PEN", "VIAL", "AMPOULE", "SACHETS?", "GRANULES", "MOUTHWASH", "SHAMPOO",
    "FORTE", "RETARD", "DEPOT", "NOS", "UNKNOWN", "GENERIC", "PLAIN", "REGULAR",
)
_FORM = r"\b(" + "|".join(w.replace(" ", r"\s") for w in _FORM_WORDS) + r")\b"
# A combination written in a drugname: split only when every part resolves.
_COMBO_SPLIT = r"\s*(?:;|\+|/|,|&|\bAND\b|\bW/|\bWITH\b)\s*"


def _word_re(words: Iterable[str]) -> str:
    """One whole-word pattern for a word list (one literal in the plan, not an array of them)."""
    return "^(" + "|".join(words) + ")$"


_SALT_RE = _word_re(SALT_WORDS)
_MINERAL_RE = _word_re(MINERAL_WORDS)


def _squash(col: Column) -> Column:
    """Collapse white space, trim; empty -> null (the text evaluated once)."""
    return F.nullif(F.trim(F.regexp_replace(col, r"\s+", " ")), F.lit(""))


def fold_moiety(col: str | Column) -> Column:
    """One upper-case ingredient text -> its active moiety by the rule list.

    The words of :data:`SALT_WORDS` are removed when what remains still holds
    a word in neither :data:`SALT_WORDS` nor :data:`MINERAL_WORDS`; otherwise
    the text is kept whole (``SODIUM CHLORIDE``, ``FERROUS SULFATE``).
    ``PANTOPRAZOLE SODIUM SESQUIHYDRATE`` -> ``PANTOPRAZOLE``; ``AMLODIPINE
    BESYLATE`` -> ``AMLODIPINE``; null stays null. Use it on a column or a
    lambda variable: it refers to its input several times."""
    words = F.split(_squash(_c(col)), " ")
    moiety = F.exists(words, lambda w: ~w.rlike(_SALT_RE) & ~w.rlike(_MINERAL_RE))
    keep = F.when(moiety, F.filter(words, lambda w: ~w.rlike(_SALT_RE))).otherwise(words)
    return F.array_join(keep, " ")


def prod_ai_ingredients(col: str | Column) -> Column:
    """A prod_ai text -> the sorted distinct array of its folded ingredients.

    Split on ``\\`` only (FDA's separator; ``/``, ``+``, ``;`` and `` AND ``
    occur inside single ingredient names such as ``VARICELLA-ZOSTER VIRUS
    STRAIN OKA/MERCK``, so splitting there would invent ingredients). Each
    part trimmed and folded; empty parts and :data:`NO_PROD_AI` placeholders
    dropped. Null or nothing left -> an empty array."""
    s = F.upper(_c(col))
    parts = F.transform(F.split(F.coalesce(s, F.lit("")), r"\\"), lambda p: fold_moiety(p))
    none = _word_re(NO_PROD_AI)
    kept = F.filter(parts, lambda p: p.isNotNull() & ~p.rlike(none))
    return F.array_sort(F.array_distinct(kept))


def clean_name(col: str | Column) -> Column:
    """A drugname_norm made a lookup key: WHO-DD codes (``/00490001/``),
    ``/NET/``, region or ``NOS`` tags in parentheses and ``^...^`` maker
    tags dropped, ``?`` (an unmappable byte) made a space, a trailing ``NOS``
    dropped, a leading ``VIT`` written ``VITAMIN`` and a leading ``CO ``
    ``CO-`` (British co- names: ``CO TENIDONE``), white space collapsed."""
    s = F.regexp_replace(_c(col), r"/\s*[0-9]{5,}\s*/|/NET/|\?|\((UNITED STATES|CANADA|NOS)\)|\^[^^]*\^|\s+NOS$",
                         " ")
    # VIT B12 -> VITAMIN B12; CO TENIDONE -> CO-TENIDONE (a British co- name)
    s = F.regexp_replace(F.regexp_replace(F.ltrim(s), r"^VIT\.?\s+", "VITAMIN "), r"^CO\s+(?=[A-Z]{5})", "CO-")
    return _squash(s)


def ingredient_part(col: str | Column) -> Column:
    """The ingredient part of a name: ``BRAND//INGREDIENT`` -> ``INGREDIENT``;
    ``BRAND (INGREDIENT)`` and ``BRAND [INGREDIENT]`` (a final bracket, its
    closing sign may be cut off) -> the bracket's text; otherwise null."""
    s = _c(col)
    slashes = F.regexp_extract(s, r"^.+?//(.+)$", 1)
    paren = F.regexp_extract(s, r"^[^(\[]+[(\[]([^()\[\]]+)[)\]]?\s*$", 1)
    return _squash(F.concat(slashes, F.when(slashes == "", paren).otherwise(F.lit(""))))


def outside_bracket(col: str | Column) -> Column:
    """The name without a final bracket (``TYLENOL (CAPLET)`` -> ``TYLENOL``)."""
    return _squash(F.regexp_replace(_c(col), r"\s*[(\[][^()\[\]]*[)\]]?\s*$", ""))


def bare_name(col: str | Column) -> Column:
    """A name without strengths (``10``, ``40MG``, ``1%``) and dosage-form
    words (``TABLETS``, ``EYE DROPS``, ``ER``, ...); null when nothing is left."""
    s = F.regexp_replace(F.regexp_replace(_c(col), _STRENGTH, " "), _FORM, " ")
    return _squash(F.regexp_replace(s, r"[,.\-/]+\s*$|^\s*[,.\-/]+", " "))


# Words of a name that say who makes or sells it, or that the therapy goes
# on, not what it is: generic makers' prefixes and suffixes (Canadian APO-,
# NOVO-, RIVA, JAMP, PMS; European generic houses), AERS's "CONTINUING".
# Dropped only in the candidate key "plain"; whole words only.
MAKER_WORDS: tuple[str, ...] = (
    "CONTINUING", "APO", "NOVO", "RIVA", "JAMP", "PMS", "TEVA", "SANDOZ", "MYLAN", "ACCORD", "ZENTIVA",
    "RATIOPHARM", "RATIO", "HEXAL", "STADA", "ACTAVIS", "AUROBINDO", "NORMON", "MABO", "ORIFARM", "HENNING",
    "KRKA", "CINFA", "KERN", "ALMUS", "ARROW", "BIOGARAN", "ZYDUS", "MEPHA", "SPIRIG", "WINTHROP", "HIKMA",
    "FRESENIUS", "KABI", "HOSPIRA", "AUROVITAS", "VIATRIS", "GENERICS", "HEUMANN", "PUREN", "ABZ", "ARISTO",
    "NEURAXPHARM", "AXCOUNT", "SUN", "LUPIN", "CIPLA", "GLENMARK", "TORRENT", "AMNEAL", "APOTEX", "SANIS",
    "MINT", "AURO", "MAR", "REDDY'S", "F.C.", "CONCENTRATE", "FOR", "REG", "STRENGTH",
)
_MAKER = r"\b(" + "|".join(w.replace(".", r"\.") for w in MAKER_WORDS) + r")(-|(?=\s|$))"


def plain_name(col: str | Column) -> Column:
    """:func:`bare_name` without :data:`MAKER_WORDS`, also as a prefix with a
    hyphen (``APO ALENDRONAT``, ``APO-ALENDRONAT`` -> ``ALENDRONAT``, ``BACTRIM CONTINUING`` -> ``BACTRIM``); null when
    nothing is left."""
    return bare_name(F.regexp_replace(_c(col), _MAKER, " "))


def inner_bracket(col: str | Column) -> Column:
    """The text of a name's first bracket wherever it stands, when the name
    has one bracket pair: AERS writes ``BRAND(INGREDIENT) FORM, STRENGTH``
    (``ZOCOR(SIMVASTATIN) TABLET, IU`` -> ``SIMVASTATIN``, ``(OXALIPLATIN) -
    SOLUTION- 85 MG/M2`` -> ``OXALIPLATIN``); otherwise null. Only a lookup
    key: it must equal a known ingredient or a table entry."""
    s = _c(col)
    one = s.rlike(r"^[^()\[\]]*[(\[][^()\[\]]+[)\]][^()\[\]]*$")
    return F.when(one, _squash(F.regexp_extract(s, r"[(\[]([^()\[\]]+)[)\]]", 1)))


def latin_forms(col: Column) -> Column:
    """INN endings of other languages made English: ``-UM`` (Latin:
    ``PANTOPRAZOLUM``, ``ALLOPURINOLUM``) -> ``-E`` and ``-``; ``-A`` / ``-O``
    (Spanish, Italian: ``AMLODIPINA``, ``DOPAMINA``) -> ``-E`` and ``-``;
    ``-E`` added to a name ending in ``-ON`` / ``-IN`` / ``-OL`` (German
    ``DEXAMETHASON``) and to one ending in ``-AT`` (German ``ALENDRONAT``).
    Only used as keys that must equal a known ingredient."""
    return F.filter(F.array(
        F.when(col.rlike("[A-Z]{4}UM$"), F.regexp_replace(col, "UM$", "E")),
        F.when(col.rlike("[A-Z]{4}UM$"), F.regexp_replace(col, "UM$", "")),
        F.when(col.rlike("[A-Z]{4}[AO]$"), F.regexp_replace(col, "[AO]$", "E")),
        F.when(col.rlike("[A-Z]{4}[AO]$"), F.regexp_replace(col, "[AO]$", "")),
        F.when(col.rlike("[A-Z]{4}(ON|IN|OL)$"), F.concat(col, F.lit("E"))),
        F.when(col.rlike("[A-Z]{4}AT$"), F.concat(col, F.lit("E"))),  # German ALENDRONAT
    ), lambda x: x.isNotNull())


_KEYS = ["_whole", "_part", "_outside", "_bare", "_bare_part", "_bare_outside", "_inner", "_bare_inner", "_plain",
         "_plain_part"]


def with_name_candidates(df: DataFrame, col: str = "drugname_norm") -> DataFrame:
    """``df`` with ``candidates``: the keys a name is looked up by, best first,
    as an array of ``struct(rank, key)`` (rank 0 best): the cleaned whole name
    (:func:`clean_name`), the ingredient part of ``BRAND//INGREDIENT`` /
    ``BRAND (INGREDIENT)`` / ``BRAND [INGREDIENT]`` (:func:`ingredient_part`),
    the name without a final bracket (:func:`outside_bracket`), those three
    without strengths / form words (:func:`bare_name`), the first bracket
    anywhere (:func:`inner_bracket`) and it bare, the name without its final
    bracket and its ingredient part without maker words (:func:`plain_name`),
    then each of the ten folded (:func:`fold_moiety`), then their INN endings made English
    (:func:`latin_forms`); nulls and repeats dropped. Built in stages of
    columns, so that no step copies the expression of the one before."""
    out = df.withColumn("_whole", clean_name(col))
    out = out.withColumn("_part", ingredient_part("_whole")).withColumn("_outside", outside_bracket("_whole"))
    out = out.withColumns({"_bare": bare_name("_whole"), "_bare_part": bare_name("_part"),
                           "_bare_outside": bare_name("_outside"), "_inner": inner_bracket("_whole"),
                           "_plain": plain_name("_outside"), "_plain_part": plain_name("_part")})
    out = out.withColumn("_bare_inner", bare_name("_inner"))
    out = out.withColumn("_base", F.array(*_KEYS))
    out = out.withColumn("_folded", F.transform("_base", lambda k: fold_moiety(k)))
    out = out.withColumn("_latin", F.flatten(F.transform("_folded", lambda k: latin_forms(k))))
    keys = F.filter(F.array_distinct(F.concat("_base", "_folded", "_latin")), lambda k: k.isNotNull())
    out = out.withColumn("candidates", F.transform(keys, lambda k, i: F.struct(i.alias("rank"), k.alias("key"))))
    return out.drop(*_KEYS, "_base", "_folded", "_latin")


def with_combination_parts(df: DataFrame, col: str = "drugname_norm") -> DataFrame:
    """``df`` with ``parts``: the cleaned name (its ingredient part or its
    first bracket if it has one) split into the parts of a combination (``;``
    ``/`` ``+`` ``,`` ``&`` `` AND `` `` W/ `` `` WITH ``), each without
    strengths, form and maker words and folded; an array of >= 2 parts, or null."""
    out = df.withColumn("_whole", clean_name(col))
    out = out.withColumn("_text", F.coalesce(ingredient_part("_whole"), inner_bracket("_whole"), F.col("_whole")))
    out = out.withColumn("_split", F.split("_text", _COMBO_SPLIT))
    out = out.withColumn("_bare", F.transform("_split", lambda p: plain_name(p)))
    out = out.withColumn("_parts", F.filter(F.transform("_bare", lambda p: fold_moiety(p)),
                                            lambda p: p.isNotNull() & (p != "")))
    return (out.withColumn("parts", F.when(F.size("_parts") >= 2, F.col("_parts")))
            .drop("_whole", "_text", "_split", "_bare", "_parts"))


# --------------------------------------------------------------------------- #
# the curated table
# --------------------------------------------------------------------------- #
CURATED_COLUMNS = ["name", "ingredients", "source"]


@lru_cache(maxsize=1)
def curated_entries() -> tuple[tuple[str, tuple[str, ...], str], ...]:
    """``resources/drug_ingredients.csv``: (name, sorted ingredients, source),
    names and ingredients upper-case with white space collapsed; refuses a
    line without a source or an ingredient."""
    text = resources.files("faerslake").joinpath("resources/drug_ingredients.csv").read_text("utf-8")
    out = []
    for i, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        name = " ".join(row["name"].upper().split())
        ings = tuple(sorted({" ".join(x.upper().split()) for x in row["ingredients"].split("\\") if x.strip()}))
        if not name or not ings or not row["source"].strip():
            raise ValueError(f"resources/drug_ingredients.csv line {i}: name, ingredients and source are required")
        out.append((name, ings, row["source"].strip()))
    return tuple(out)


_LEXICON = T.StructType([
    T.StructField("key", T.StringType()), T.StructField("ingredients", T.ArrayType(T.StringType())),
])


SPELLING_SOURCE = "WHO INN list"


def spelling_map() -> dict[str, str]:
    """The curated lines that are spelling synonyms of one ingredient (source
    starting with :data:`SPELLING_SOURCE`): INN / European spelling -> the US
    name FDA's prod_ai uses, folded (``PARACETAMOL`` -> ``ACETAMINOPHEN``)."""
    return {name: ings[0] for name, ings, src in curated_entries()
            if src.startswith(SPELLING_SOURCE) and len(ings) == 1 and name != ings[0]}


def canonical_spelling(col: Column) -> Column:
    """An ingredient array with every INN / European spelling of
    :func:`spelling_map` replaced by its US name (sorted, distinct)."""
    from faerslake.normalise import _sql_text

    pairs = spelling_map()
    if not pairs:
        return col
    m = F.expr("map(" + ", ".join(f"{_sql_text(k)}, {_sql_text(v)}" for k, v in sorted(pairs.items())) + ")")
    return F.array_sort(F.array_distinct(F.transform(col, lambda x: F.coalesce(F.element_at(m, x), x))))


def spelling_lexicon(spark: SparkSession) -> DataFrame:
    """The spelling synonyms (:func:`spelling_map`) as (key, [US name])."""
    rows = [(k, [v]) for k, v in sorted(spelling_map().items())]
    return spark.createDataFrame(rows, _LEXICON)


def curated_lexicon(spark: SparkSession) -> DataFrame:
    """The curated table as (key, ingredients); ingredients folded like prod_ai's."""
    rows = [(name, list(ings)) for name, ings, _ in curated_entries()]
    df = spark.createDataFrame(rows, _LEXICON)
    return df.select("key", F.array_sort(F.array_distinct(
        F.transform("ingredients", lambda x: fold_moiety(x)))).alias("ingredients"))


# --------------------------------------------------------------------------- #
# the learned dictionary
# --------------------------------------------------------------------------- #
DICTIONARY_COLUMNS = ["name", "ingredients", "support", "agreement"]


def with_prod_ai_ingredients(drugs: DataFrame) -> DataFrame:
    """silver/drugs rows with ``pa`` (the folded prod_ai ingredients, maybe empty)."""
    return drugs.withColumn("pa", prod_ai_ingredients("prod_ai_norm"))


def learn_dictionary(drugs_with_pa: DataFrame, min_support: int, min_agreement: float) -> DataFrame:
    """Name -> ingredient set learned from rows with a prod_ai.

    Keys: each row's cleaned drugname and its ingredient part (both, when
    they differ). ``support`` = rows with a prod_ai under that key;
    ``agreement`` = share of them on the most common ingredient set. Kept when
    support >= ``min_support`` and agreement >= ``min_agreement`` (> 0.5, so
    the set is unique). A column ``n`` in the input, when present, is the
    number of drug rows each input row stands for (the distinct texts of
    :func:`resolve`). Columns: name, ingredients (sorted array), support,
    agreement."""
    weight = F.col("n") if "n" in drugs_with_pa.columns else F.lit(1).cast("long")
    rows = (drugs_with_pa.where(F.size("pa") > 0)
            .select(clean_name("drugname_norm").alias("_whole"), F.array_join("pa", "\\").alias("set"),
                    weight.alias("_n"))
            .select(F.array_distinct(F.filter(F.array("_whole", ingredient_part("_whole")),
                                              lambda k: k.isNotNull())).alias("keys"), "set", "_n"))
    counted = (rows.select(F.explode("keys").alias("name"), "set", "_n").groupBy("name", "set")
               .agg(F.sum("_n").alias("count")))
    w = Window.partitionBy("name")
    ranked = (counted.withColumn("support", F.sum("count").over(w))
              .withColumn("_r", F.row_number().over(w.orderBy(F.desc("count"), "set"))))
    return (ranked.where(F.col("_r") == 1)
            .select("name", F.split("set", r"\\").alias("ingredients"), F.col("support").cast("long"),
                    (F.col("count") / F.col("support")).alias("agreement"))
            .where((F.col("support") >= min_support) & (F.col("agreement") >= min_agreement)))


def known_ingredients(drugs_with_pa: DataFrame) -> DataFrame:
    """Every folded ingredient of a prod_ai in the lake, as (key, [key])."""
    ing = drugs_with_pa.select(F.explode("pa").alias("key")).distinct()
    return ing.select("key", F.array("key").alias("ingredients"))


def corpus_lexicon(dictionary: DataFrame, known: DataFrame) -> DataFrame:
    """(key, ingredients): the known ingredients (a name that is an ingredient
    is that ingredient) and the dictionary's names not already such a key."""
    learned = dictionary.select(F.col("name").alias("key"), "ingredients")
    return known.unionByName(learned.join(known.select("key"), "key", "left_anti"))


# --------------------------------------------------------------------------- #
# resolution
# --------------------------------------------------------------------------- #
def resolve_names(names: DataFrame, lexicon: DataFrame, parts_lexicon: DataFrame | None = None) -> DataFrame:
    """Distinct ``drugname_norm`` values -> (drugname_norm, ingredients) for
    the names some candidate key (:func:`with_name_candidates`, best rank wins)
    or a combination (every part a key of ``parts_lexicon``, default
    ``lexicon``) resolves; the others are absent."""
    lex = F.broadcast(lexicon)
    cand = with_name_candidates(names).select("drugname_norm", F.explode("candidates").alias("c"))
    hits = cand.join(lex, F.col("c.key") == lex["key"]).select(
        "drugname_norm", F.col("c.rank").alias("rank"), "ingredients")
    w = Window.partitionBy("drugname_norm").orderBy("rank")
    single = hits.withColumn("_r", F.row_number().over(w)).where("_r = 1").select("drugname_norm", "ingredients")

    plex = F.broadcast(parts_lexicon if parts_lexicon is not None else lexicon)
    combos = (names.join(single, "drugname_norm", "left_anti")
              .transform(with_combination_parts).where(F.col("parts").isNotNull())
              .select("drugname_norm", F.size("parts").alias("n"), F.explode("parts").alias("part")))
    combo_hits = (combos.join(plex, combos["part"] == plex["key"], "left")
                  .groupBy("drugname_norm", "n")
                  .agg(F.count("key").alias("found"), F.flatten(F.collect_list("ingredients")).alias("ings"))
                  .where(F.col("found") == F.col("n"))
                  .select("drugname_norm", F.array_sort(F.array_distinct("ings")).alias("ingredients")))
    return single.unionByName(combo_hits)


# Bracket texts that are not an ingredient (a form, a use, a class).
NOT_INGREDIENTS: tuple[str, ...] = (
    "CAPLET", "CAPLETS", "MIGRAINE", "ANTIRETROVIRALS", "VITAMINS", "VITAMINS NOS", "CONTINUING", "GENERIC",
    "UNKNOWN", "UNSPECIFIED", "OTHER", "COMBINATIONS", "ALL OTHER THERAPEUTIC PRODUCTS", "NON-STEROIDAL",
    "EXTRA STRENGTH", "CHILDREN", "CHILDRENS", "INFANT", "PEDIATRIC", "ADULT", "SUGAR FREE",
)


def part_as_ingredients(names: DataFrame) -> DataFrame:
    """The last rule of step 2: a name written ``BRAND (INGREDIENT)``,
    ``BRAND [INGREDIENT]`` or ``BRAND//INGREDIENT`` whose ingredient part no
    lookup resolved is given that part itself, folded, when it is one
    ingredient (a part that reads as a combination is left: one misspelt
    part would become a false ingredient): AERS and WHO-DD
    write the active ingredient there (``TETRACAINE (TETRACAINE)``,
    ``MEICELIN (CEFMINOX)``). Each part must keep >= 4 letters after
    strengths and form words are removed and must not be one of
    :data:`NOT_INGREDIENTS` (``TYLENOL (CAPLET)`` stays unresolved here)."""
    out = names.withColumn("_part", ingredient_part(clean_name("drugname_norm")))
    out = out.where(F.col("_part").isNotNull()).withColumn("_split", F.split("_part", _COMBO_SPLIT))
    out = out.withColumn("_bare", F.transform("_split", lambda p: bare_name(p)))
    out = out.withColumn("_ings", F.transform("_bare", lambda p: fold_moiety(p)))
    bad = _word_re(NOT_INGREDIENTS)
    ok = F.forall("_ings", lambda p: p.isNotNull() & p.rlike("^[A-Z][A-Z0-9 .'-]*[A-Z]{4}") & ~p.rlike(bad))
    return (out.where((F.size("_ings") == 1) & ok)
            .select("drugname_norm", F.array_sort(F.array_distinct("_ings")).alias("ingredients")))


# Words that head a class of products rather than name one ingredient: a
# name is never resolved by containing one of these alone (HUMULIN INSULIN
# 70/30 is not INSULIN).
CLASS_HEADS: tuple[str, ...] = (
    "INSULIN", "INTERFERON", "IMMUNOGLOBULIN", "GLOBULIN", "FACTOR", "VACCINE", "TOXIN", "ALBUMIN", "HEPARIN",
    "VITAMIN", "VITAMINS", "ESTROGENS", "ESTROGEN", "HORMONE", "ENZYME", "ENZYMES", "PROBIOTIC", "ANTACID",
    "MULTIVITAMIN", "MULTIVITAMINS", "MINERALS", "ELECTROLYTES", "LAXATIVE", "STEROID", "STEROIDS", "ANTIBIOTIC",
    "ANTIBIOTICS", "CHEMOTHERAPY", "UNSPECIFIED INGREDIENT", "EXTRACT", "OIL", "WATER", "GLUCOSE", "DEXTROSE",
    "LACTOBACILLUS", "ACID", "ALCOHOL", "OXYGEN", "SALINE",
)
_TOKEN_SPLIT = r"[\s]+"
_MAX_GRAM = 3  # words of the longest ingredient looked for inside a name
_MIN_CONTAINED = 6  # letters of the shortest ingredient looked for inside a name


def contained_ingredients(names: DataFrame, known: DataFrame) -> DataFrame:
    """A rule of step 2, after the table: a name that holds known ingredients
    among other words (``NOVO BETAHISTINE``, ``LEVETIRACETAM NORMON ...
    CONCENTRATE``, ``HYDROCODONE BITARTRATE ACETAMINOPHEN``) is those
    ingredients. The name (cleaned, without strengths, form and maker words)
    is split into the parts of a combination (``/``, ``+``, ``;``, `` W/ ``
    ...); in each part every run of one to three words is folded and looked
    up among the lake's known ingredients (``known``: key, [key]). Per part,
    the longest runs found (a run inside a longer found run is dropped) must
    not overlap, and no word left over may be a salt or mineral word (the
    name then holds an ingredient the lake does not know: ``CALCIUM
    MAGNESIUM CITRATE`` is left), nor a vitamin's letter beside a vitamin
    found (``VITAMIN A D``). Every part must hold at least one; the name's
    ingredients are the union. A single word found must have at least six
    letters and be no salt, mineral or class word (:data:`CLASS_HEADS`), so
    ``JAMP MAGNESIUM`` and ``HUMULIN INSULIN`` stay unresolved. Names of one
    word are the whole-name lookup's, not this rule's."""
    base = names.withColumn("_text", plain_name(clean_name("drugname_norm")))
    parts = (base.where(F.col("_text").isNotNull())
             .select("drugname_norm", F.posexplode(F.split("_text", _COMBO_SPLIT)).alias("p", "_part"))
             .withColumn("_t", F.filter(F.split(F.trim("_part"), _TOKEN_SPLIT), lambda w: w != "")))
    parts = parts.where(F.size("_t") > 0)
    n_parts = parts.groupBy("drugname_norm").agg(F.count("*").alias("n_parts"),
                                                 F.sum(F.size("_t")).alias("n_words"))
    def runs_from(i: Column) -> Column:  # the runs of 1.._MAX_GRAM words starting at word i
        return F.transform(F.sequence(F.lit(1), F.least(F.lit(_MAX_GRAM), F.size("_t") - i)),
                           lambda n: F.struct(i.alias("s"), n.alias("n"),
                                              F.array_join(F.slice("_t", i + 1, n), " ").alias("text")))

    runs = F.flatten(F.transform(F.sequence(F.lit(0), F.size("_t") - 1), runs_from))
    grams = parts.select("drugname_norm", "p", "_t", F.explode(runs).alias("g"))
    grams = grams.withColumn("key", fold_moiety(F.col("g.text")))
    single_bad = _word_re(SALT_WORDS + MINERAL_WORDS + CLASS_HEADS)
    # a run never starts with a salt word (a salt follows its moiety: in
    # HYDROCODONE BITARTRATE ACETAMINOPHEN the run BITARTRATE ACETAMINOPHEN is no ingredient)
    first_word = F.element_at(F.split(F.col("g.text"), " "), 1)
    grams = grams.where(~first_word.rlike(_SALT_RE) & (F.length("key") >= _MIN_CONTAINED)
                        & ((F.col("g.n") > 1) | ~F.col("key").rlike(single_bad)) & ~F.col("key").rlike(single_bad))
    lex = F.broadcast(known.select(F.col("key").alias("k"), "ingredients"))
    hits = grams.join(lex, grams["key"] == lex["k"]).select(
        "drugname_norm", "p", "_t", F.struct(F.col("g.s").alias("s"), F.col("g.n").alias("n"),
                                             F.col("key").alias("k"), "ingredients").alias("m"))
    per_part = hits.groupBy("drugname_norm", "p", "_t").agg(F.collect_list("m").alias("ms"))
    longest = F.filter("ms", lambda x: ~F.exists(
        "ms", lambda y: (y["n"] > x["n"]) & (y["s"] <= x["s"]) & (y["s"] + y["n"] >= x["s"] + x["n"])))
    per_part = per_part.withColumn("ms", longest)
    apart = F.forall("ms", lambda x: F.forall("ms", lambda y: (x["s"] == y["s"]) | (x["s"] + x["n"] <= y["s"])
                                                | (y["s"] + y["n"] <= x["s"])))
    left = F.filter(F.sequence(F.lit(0), F.size("_t") - 1),
                    lambda i: ~F.exists("ms", lambda x: (i >= x["s"]) & (i < x["s"] + x["n"])))
    salt_left = F.exists(left, lambda i: F.element_at("_t", i + 1).rlike(_word_re(SALT_WORDS + MINERAL_WORDS)))
    # VITAMIN A D: a vitamin found, another vitamin's letter left over
    vitamin_left = F.exists("ms", lambda x: x["k"].startswith("VITAMIN ")) & F.exists(
        left, lambda i: F.element_at("_t", i + 1).rlike("^[A-Z][0-9]{0,2}$"))
    ok = per_part.where(apart & ~salt_left & ~vitamin_left).select(
        "drugname_norm", "p", F.flatten(F.transform("ms", lambda x: x["ingredients"])).alias("ings"))
    found = ok.groupBy("drugname_norm").agg(F.count("*").alias("found"), F.flatten(F.collect_list("ings")).alias("ings"))
    return (found.join(n_parts, "drugname_norm")
            .where((F.col("found") == F.col("n_parts")) & (F.col("n_words") >= 2))
            .select("drugname_norm", F.array_sort(F.array_distinct("ings")).alias("ingredients")))


_MIN_NEAR = 8  # letters of the shortest name matched to a near ingredient


def near_ingredients(names: DataFrame, known: DataFrame) -> DataFrame:
    """The last rule of step 2: a misspelt or cut-off ingredient. A name
    (cleaned, without strengths, form and maker words, folded) of at least
    eight letters that is one edit (Levenshtein) from a known ingredient
    (``ATORVASTSTIN``, ``ALPRAZOIAM``), or the first letters, at least 60 %
    of them, of one (``PANTOPRAZ``, ``DAPAGLIF``), is that ingredient when
    exactly one known ingredient is so near. Compared only with known
    ingredients of the same first three letters (a blocked join, not a cross
    join)."""
    keyed = names.withColumn("_k", fold_moiety(plain_name(clean_name("drugname_norm"))))
    keyed = keyed.where((F.length("_k") >= _MIN_NEAR) & F.col("_k").rlike("^[A-Z][A-Z -]*[A-Z]$"))
    keyed = keyed.withColumn("_b", F.substring("_k", 1, 3))
    lex = (known.where((F.length("key") >= _MIN_NEAR) & F.col("key").rlike("^[A-Z][A-Z -]*[A-Z]$")
                       & ~F.col("key").rlike(_word_re(CLASS_HEADS)))
           .select(F.col("key").alias("k"), "ingredients", F.substring("key", 1, 3).alias("_b")))
    pairs = keyed.join(F.broadcast(lex), "_b")
    near = ((F.abs(F.length("_k") - F.length("k")) <= 1) & (F.levenshtein("_k", "k") <= 1)) | (
        F.col("k").startswith(F.col("_k")) & (F.length("_k") >= F.length("k") * 0.6))
    hits = pairs.where(near).groupBy("drugname_norm").agg(
        F.count_distinct("k").alias("n"), F.first("ingredients").alias("ingredients"))
    return hits.where("n = 1").select("drugname_norm", "ingredients")


# INN stems (WHO, "The use of stems in the selection of International
# Nonproprietary Names", 2018): endings WHO reserves for one class of
# substances and asks trademark owners not to use, so a one-word name ending
# in one of them is an INN. Only stems of at least four letters that no
# common English or brand ending shares (-MYCIN, -CAINE and -ZOLAM are left
# out: GARAMYCIN, NOVOCAINE and the Turkish DEMIZOLAM are brands; -TEROL
# too, shared by sterols: CHOLESTEROL, the brand GASTEROL).
INN_STEMS: tuple[str, ...] = (
    "COXIB", "APINE", "VIRINE", "CICLOVIR", "PREVIR", "BUVIR", "TEGRAVIR", "NAVIR", "PRIL", "PRILAT", "SARTAN",
    "OLOL", "ALOL", "DIPINE", "VASTATIN", "PRAZOLE", "TIDINE", "FLOXACIN", "OXACIN", "CILLIN", "CONAZOLE",
    "CYCLINE", "TINIB", "ZUMAB", "XIMAB", "UMAB", "PARIN", "GLIPTIN", "GLIFLOZIN", "GLITAZONE", "SETRON",
    "TRIPTAN", "AZEPAM", "PROFEN", "FENAC", "OXETINE", "TRIPTYLINE", "PRAMINE", "PERIDOL", "PERONE",
    "PENEM", "BACTAM", "DRONATE", "LUKAST", "AFIL", "SONIDE", "PLATIN", "TAXEL", "TECAN", "RUBICIN", "ASTINE",
    "LUTAMIDE", "NIDAZOLE", "AZOSIN", "TREONAM", "SEMIDE", "THIAZIDE", "FUNGIN", "ZOLAST", "LUKAST",
    "CITABINE", "FLURANE", "CURONIUM", "BARBITAL", "DRONATE",
)
_MIN_STEM_NAME = 8  # letters of the shortest name taken as an INN by its stem


def inn_stem_names(names: DataFrame) -> DataFrame:
    """A rule of the curated step, tried last: a name that is one word
    (cleaned, without strengths, form and maker words, folded) of at least
    eight letters ending in an :data:`INN_STEMS` stem is that INN itself
    (``NEVIRAPINE``, ``ROFECOXIB``, ``AZTREONAM``, ``CLOPERASTINE``), even when
    no prod_ai of the lake names it."""
    key = fold_moiety(plain_name(clean_name("drugname_norm")))
    stems = "(" + "|".join(sorted(set(INN_STEMS))) + ")$"
    out = names.withColumn("_k", key)
    return (out.where(F.col("_k").rlike(f"^[A-Z]{{{_MIN_STEM_NAME},}}$") & F.col("_k").rlike(stems))
            .select("drugname_norm", F.array("_k").alias("ingredients")))


@dataclass(frozen=True)
class Identity:
    """The outputs of :func:`resolve`: one row per drug row (``rows``: the
    silver/drugs keys, drugname_norm, ingredients array, method), the learned
    dictionary, and the exploded silver/drug_ingredients frame."""

    rows: DataFrame
    dictionary: DataFrame

    @property
    def ingredients(self) -> DataFrame:
        return explode_ingredients(self.rows)


def resolve(spark: SparkSession, drugs: DataFrame, min_support: int, min_agreement: float,
            curated: bool = True, keep: Callable[[DataFrame], DataFrame] | None = None) -> Identity:
    """silver/drugs -> one resolved row per drug row, in the documented order.

    ``keep``, when given, is applied to the small name-level frames the rules
    read many times (the distinct texts, the learned dictionary, the known
    ingredients, the names) and to the per-text result joined back to the
    rows: the job passes one that caches and materialises
    them, so that silver/drugs is aggregated once, not once per rule."""
    keep = keep or (lambda df: df)
    # The per-row work is one aggregate to the distinct (drugname, prod_ai)
    # texts and one join back: the rules run on distinct texts only, the
    # prod_ai folding on each distinct prod_ai text once.
    texts = drugs.groupBy("drugname_norm", "prod_ai_norm").agg(F.count("*").alias("n"))
    pa_texts = (texts.select(F.col("prod_ai_norm").alias("_pt")).distinct()
                .withColumn("pa", prod_ai_ingredients("_pt")))
    d = keep(texts.join(pa_texts, F.col("prod_ai_norm").eqNullSafe(F.col("_pt"))).select(
        "drugname_norm", "prod_ai_norm", "n", "pa"))
    dictionary = keep(learn_dictionary(d, min_support, min_agreement))
    known = keep(known_ingredients(d))
    corpus = corpus_lexicon(dictionary, known)
    names = keep(d.where(F.size("pa") == 0).select("drugname_norm").where(F.col("drugname_norm").isNotNull())
                 .distinct())
    # Every rule is a function of the name alone, so each runs on all names and
    # the first rule (in the documented order) that resolves a name wins: one
    # union and one window, a plan that grows with the rules, not doubling
    # with each one as a chain of "the names the rules before left" would.
    rules: list[tuple[str, DataFrame]] = [(LEARNED, resolve_names(names, corpus))]
    if curated:
        cur = curated_lexicon(spark)
        # the curated key first, then the lake's for the parts of a combination
        both = cur.unionByName(corpus.join(cur.select("key"), "key", "left_anti"))
        rules.append((CURATED, resolve_names(names, cur, both)))
    # then the name's own ingredient part, taken as it is written; known
    # ingredients inside a longer name; last a near (misspelt, cut) ingredient
    # (with the table on, its spelling synonyms count as known ingredients there)
    inside = known.unionByName(spelling_lexicon(spark).join(known.select("key"), "key", "left_anti")) \
        if curated else known
    rules += [(LEARNED, part_as_ingredients(names)), (LEARNED, contained_ingredients(names, inside)),
              (LEARNED, near_ingredients(names, inside))]
    if curated:  # last: a one-word name with a WHO INN stem is that INN
        rules.append((CURATED, inn_stem_names(names)))
    ranked = [df.select("drugname_norm", "ingredients", F.lit(method).alias("method"), F.lit(i).alias("_rule"))
              for i, (method, df) in enumerate(rules)]
    hits = ranked[0]
    for df in ranked[1:]:
        hits = hits.unionByName(df)
    first = Window.partitionBy("drugname_norm").orderBy("_rule")
    resolved = hits.withColumn("_r", F.row_number().over(first)).where("_r = 1").drop("_r", "_rule")
    by_name = resolved.select("drugname_norm", F.col("ingredients").alias("name_ings"), F.col("method").alias("m"))
    per_text = (d.join(by_name, "drugname_norm", "left")
                .select(F.col("drugname_norm").alias("_dn"), F.col("prod_ai_norm").alias("_pa"),
                        F.when(F.size("pa") > 0, F.col("pa")).otherwise(F.col("name_ings")).alias("ingredients"),
                        F.when(F.size("pa") > 0, F.lit(PROD_AI)).when(F.col("m").isNotNull(), F.col("m"))
                        .otherwise(F.lit(UNRESOLVED)).alias("method")))
    if curated:  # one spelling per ingredient, whatever step found it
        per_text = per_text.withColumn("ingredients", canonical_spelling(F.col("ingredients")))
    per_text = keep(per_text)
    on = drugs["drugname_norm"].eqNullSafe(per_text["_dn"]) & drugs["prod_ai_norm"].eqNullSafe(per_text["_pa"])
    rows = drugs.join(per_text, on).select("report_key", "quarter", "drug_seq", "role_cod", "drugname_norm",
                                           "ingredients", "method")
    return Identity(rows, dictionary)


def explode_ingredients(rows: DataFrame) -> DataFrame:
    """One row per (drug row, ingredient); an unresolved row keeps one row
    with a null ingredient."""
    return rows.select("report_key", "quarter", "drug_seq", "role_cod", "drugname_norm",
                       F.explode_outer(F.when(F.col("method") != UNRESOLVED, F.col("ingredients")))
                       .alias("ingredient"), "method")


# --------------------------------------------------------------------------- #
# the summary (OUT/drug_identity.csv, silver/drug_identity)
# --------------------------------------------------------------------------- #
SUMMARY_COLUMNS = ["level", "key", "method", "drug_rows", "share"]
TOP_UNRESOLVED = 100


def summary_counts(rows: DataFrame) -> tuple[list[tuple[str, str, int]], list[tuple[str, int]]]:
    """(quarter, method, drug rows) and the :data:`TOP_UNRESOLVED` most frequent
    unresolved names with their drug rows: small aggregates."""
    per_q = [(r["quarter"], r["method"], int(r["count"]))
             for r in rows.groupBy("quarter", "method").count().collect()]
    top = [(r["drugname_norm"] if r["drugname_norm"] is not None else "", int(r["count"]))
           for r in rows.where(F.col("method") == UNRESOLVED).groupBy("drugname_norm").count()
           .orderBy(F.desc("count"), "drugname_norm").limit(TOP_UNRESOLVED).collect()]
    return per_q, top


def summary_frame(per_quarter: list[tuple[str, str, int]], top_unresolved: list[tuple[str, int]]) -> pd.DataFrame:
    """The long layout: ``level`` all / era / quarter (one row per method,
    every method listed, share of that level's drug rows), then
    ``unresolved_name`` (key = the name, method unresolved, share of all drug
    rows). Per level, drug_rows over the methods sum to silver/drugs' rows."""
    out: list[tuple[str, str, str, int, float]] = []
    total = sum(n for _, _, n in per_quarter)

    def level(name: str, groups: dict[str, dict[str, int]], order) -> None:
        for key in sorted(groups, key=order):
            n_all = sum(groups[key].values())
            for m in METHODS:
                n = groups[key].get(m, 0)
                out.append((name, key, m, n, n / n_all if n_all else 0.0))

    def grouped(keyf) -> dict[str, dict[str, int]]:
        g: dict[str, dict[str, int]] = {}
        for q, m, n in per_quarter:
            g.setdefault(keyf(q), {}).setdefault(m, 0)
            g[keyf(q)][m] += n
        return g

    level("all", {"all": grouped(lambda q: "all").get("all", {})}, str)
    level("era", grouped(era_of), lambda e: ["legacy", "faers"].index(e) if e in ("legacy", "faers") else 9)
    level("quarter", grouped(lambda q: q), quarter_sort_key)
    for name, n in top_unresolved:
        out.append(("unresolved_name", name, UNRESOLVED, n, n / total if total else 0.0))
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def resolved_line(summary: pd.DataFrame) -> str:
    """One log line: drug rows resolved per method."""
    a = summary[summary["level"] == "all"]
    parts = [f"{m} {int(n):,} ({s:.1%})" for m, n, s in zip(a["method"], a["drug_rows"], a["share"], strict=True)]
    return "silver: drug identity: drug rows by method: " + ", ".join(parts)


def write_identity_csv(output: str | Path, summary: pd.DataFrame) -> Path:
    """``OUT/drug_identity.csv`` (atomic; text cells neutralised)."""
    return atomic_write_csv(Path(output) / "drug_identity.csv", summary[SUMMARY_COLUMNS])

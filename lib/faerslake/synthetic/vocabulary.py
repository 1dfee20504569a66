"""The generator's vocabulary: drug names and PTs as FDA writes them, and the cohort plans.

Names carry FDA's noise (quotes, cp1252 0x92, ``\\`` lists, double spaces,
trailing periods) and decoys that must not match (antitoxins, look-alike PTs).
"""

from __future__ import annotations

# (drugname, prod_ai, first year on the market) — all match the exposure tokens
# by drugname, so they are exposure drugs in every era.
BONT = [("BOTOX", "ONABOTULINUMTOXINA", 2004), ("BOTOX COSMETIC", "ONABOTULINUMTOXINA", 2004),
        ("DYSPORT", "ABOBOTULINUMTOXINA", 2004), ("MYOBLOC", "RIMABOTULINUMTOXINB", 2004),
        ("BOTULINUM TOXIN TYPE A", "BOTULINUM TOXIN TYPE A", 2004),
        ("XEOMIN", "INCOBOTULINUMTOXINA", 2010), ("JEUVEAU", "PRABOTULINUMTOXINA-XVFS", 2019),
        ("DAXXIFY", "DAXIBOTULINUMTOXINA-LANM", 2022)]
# Exposure only through prod_ai (FAERS version B has prod_ai); elsewhere not exposure.
BONT_AI_ONLY = [("MEDYTOX", "BOTULINUM TOXIN TYPE A"), ("NEURONOX", "ONABOTULINUMTOXINA")]
ANTITOXIN = [("BOTULISM ANTITOXIN HEPTAVALENT", "BOTULINUM ANTITOXIN HEPTAVALENT (EQUINE)"),
             ("BOTULINUM ANTITOXIN", ""),
             ("BABYBIG", "BOTULINUM IMMUNE  GLOBULIN")]  # double space: matches only once normalised
ANTIDEP = [("ZOLOFT", "SERTRALINE HYDROCHLORIDE"), ("SERTRALINE.", "SERTRALINE"),
           ("CYMBALTA", "DULOXETINE HYDROCHLORIDE"), ("TRAZODONE", "TRAZODONE HYDROCHLORIDE"),
           ("AMITRIPTYLINE HCL", "AMITRIPTYLINE HYDROCHLORIDE"), ("LEXAPRO", "ESCITALOPRAM OXALATE"),
           ("WELLBUTRIN XL", "BUPROPION HYDROCHLORIDE"), ("EFFEXOR  XR", "VENLAFAXINE HYDROCHLORIDE"),
           ("SYMBYAX", "FLUOXETINE HYDROCHLORIDE\\OLANZAPINE")]
ANTIDEP_INDI = ["ANXIETY", "INSOMNIA", "NEUROPATHIC PAIN", "PRODUCT USED FOR UNKNOWN INDICATION"]
DEPR_INDI_DRUGS = [("LITHIUM CARBONATE", "LITHIUM CARBONATE"), ("ABILIFY", "ARIPIPRAZOLE"),
                   ("SEROQUEL", "QUETIAPINE FUMARATE")]
DEPR_INDI = ["DEPRESSION", "MAJOR DEPRESSION"]
CONTROL = {
    "cosmetic": [("JUVEDERM", "HYALURONIC ACID"), ("RESTYLANE", "HYALURONIC ACID"),
                 ("SCULPTRA", "POLY-L-LACTIC ACID"), ("RADIESSE", "CALCIUM HYDROXYLAPATITE")],
    "migraine": [("TOPAMAX", "TOPIRAMATE"), ("IMITREX", "SUMATRIPTAN SUCCINATE"),
                 ("AIMOVIG", "ERENUMAB-AOOE"), ("EMGALITY", "GALCANEZUMAB-GNLM"),
                 ("PROPRANOLOL", "PROPRANOLOL HYDROCHLORIDE")],
    "spasticity": [("BACLOFEN", "BACLOFEN"), ("TIZANIDINE", "TIZANIDINE HYDROCHLORIDE"),
                   ("DANTRIUM", "DANTROLENE SODIUM"), ("FLEXERIL", "CYCLOBENZAPRINE HYDROCHLORIDE")],
    "torticollis": [("TRIHEXYPHENIDYL", "TRIHEXYPHENIDYL HYDROCHLORIDE"), ("KLONOPIN", "CLONAZEPAM"),
                    ("FLEXERIL", "CYCLOBENZAPRINE HYDROCHLORIDE")],
    "blepharospasm": [("KLONOPIN", "CLONAZEPAM"), ("ARTANE", "TRIHEXYPHENIDYL HYDROCHLORIDE")],
    "hyperhidrosis": [("QBREXZA", "GLYCOPYRRONIUM TOSYLATE"), ("DRYSOL", "ALUMINUM CHLORIDE"),
                      ("ROBINUL", "GLYCOPYRROLATE")],
    "sialorrhea": [("CUVPOSA", "GLYCOPYRROLATE"), ("TRANSDERM SCOP", "SCOPOLAMINE")],
    "bladder": [("DITROPAN XL", "OXYBUTYNIN CHLORIDE"), ("MYRBETRIQ", "MIRABEGRON"),
                ("VESICARE", "SOLIFENACIN SUCCINATE"), ("DETROL", "TOLTERODINE TARTRATE")],
}
GENERIC_CONTROL = [("PREDNISONE", "PREDNISONE"), ("GABAPENTIN", "GABAPENTIN")]
# (drugname, prod_ai, indication); includes FDA's noise: quotes, cp1252 0x92, `\` lists.
BACKGROUND = [
    ("LIPITOR", "ATORVASTATIN CALCIUM", "HYPERCHOLESTEROLAEMIA"),
    ("METFORMIN", "METFORMIN HYDROCHLORIDE", "TYPE 2 DIABETES MELLITUS"),
    ("HUMIRA", "ADALIMUMAB", "RHEUMATOID ARTHRITIS"),
    ("ENBREL", "ETANERCEPT", "PSORIASIS"),
    ("PREDNISONE.", "PREDNISONE", "ASTHMA"),
    ("ASPIRIN  81 MG", "ASPIRIN", "CARDIOVASCULAR EVENT PROPHYLAXIS"),
    ("LISINOPRIL", "LISINOPRIL", "HYPERTENSION"),
    ("AMLODIPINE", "AMLODIPINE BESYLATE", "HYPERTENSION"),
    ("VICODIN", "ACETAMINOPHEN\\HYDROCODONE BITARTRATE", "PAIN"),
    ("XARELTO", "RIVAROXABAN", "ATRIAL FIBRILLATION"),
    ("ELIQUIS", "APIXABAN", "ATRIAL FIBRILLATION"),
    ("REVLIMID", "LENALIDOMIDE", "PLASMA CELL MYELOMA"),
    ("KEYTRUDA", "PEMBROLIZUMAB", "LUNG NEOPLASM MALIGNANT"),
    ("OTEZLA", "APREMILAST", "PSORIATIC ARTHROPATHY"),
    ("LYRICA", "PREGABALIN", "FIBROMYALGIA"),
    ("OMEPRAZOLE", "OMEPRAZOLE", "GASTROOESOPHAGEAL REFLUX DISEASE"),
    ("SYNTHROID", "LEVOTHYROXINE SODIUM", "HYPOTHYROIDISM"),
    ("TECFIDERA", "DIMETHYL FUMARATE", "MULTIPLE SCLEROSIS"),
    ("IBUPROFEN", "IBUPROFEN", "HEMIPLEGIC MIGRAINE"),  # not a cohort PT (substring trap)
    ("TYLENOL", "ACETAMINOPHEN", "BACK PAIN"),
    ('"VITAMINS" (NOS)', "VITAMINS", "PRODUCT USED FOR UNKNOWN INDICATION"),
    ("ST. JOHN\x92S WORT", "HYPERICUM PERFORATUM", "PRODUCT USED FOR UNKNOWN INDICATION"),
    ("CAF\xc9INE CITRATE", "CAFFEINE CITRATE", "APNOEA"),
    ("INSULIN GLARGINE..", "INSULIN GLARGINE", "DIABETES MELLITUS"),
]
REAC_BG = ["NAUSEA", "HEADACHE", "FATIGUE", "DIZZINESS", "DRUG INEFFECTIVE", "RASH", "DYSPNOEA",
           "PNEUMONIA", "DIARRHOEA", "ARTHRALGIA", "VOMITING", "PAIN", "FALL", "INSOMNIA",
           "ANXIETY", "OFF LABEL USE", "MALAISE", "WEIGHT DECREASED",
           "POSTPARTUM DEPRESSION", "DEPRESSED LEVEL OF CONSCIOUSNESS"]  # event look-alikes
REAC_BONT = ["INJECTION SITE PAIN", "EYELID PTOSIS", "DYSPHAGIA", "MUSCULAR WEAKNESS",
             "DRUG INEFFECTIVE", "HEADACHE", "NECK PAIN", "DIPLOPIA", "BOTULISM"]
ROUTES = ["ORAL", "INTRAMUSCULAR", "SUBCUTANEOUS", "INTRAVENOUS", "TOPICAL", "UNKNOWN"]
ROLES = ["PS"] + ["SS"] * 2 + ["C"] * 6 + ["I"]
# The drug columns no rule reads, pre-combined so a drug row costs one random draw.
DRUG_FILLERS = [
    {"val_vbm": "1", "route": route, "dose_vbm": dose, "dechal": dechal, "rechal": rechal, "lot_num": "",
     "exp_dt": "", "nda_num": nda, "dose_amt": amt, "dose_unit": unit, "dose_form": "", "dose_freq": freq}
    for route in ROUTES
    for dose, amt, unit, freq in [("UNK", "", "", ""), ("100 UNITS", "100", "U", ""),
                                  ("20 MG, QD", "20", "MG", "QD"), ("", "", "", "")]
    for dechal, rechal in [("Y", "N"), ("D", "D"), ("U", "U"), ("N", "Y")]
    for nda in ["", "103000", "020972"]
]
OUTC = ["OT", "HO", "DS", "LT", "DE", "RI", "CA"]
RPSR = ["HP", "CSM", "FGN", "LIT", "CR", "SDY", "DT"]
OCCP = ["MD", "PH", "OT", "LW", "CN", "HP"]
MFR = ["ALLERGAN", "IPSEN", "MERZ", "PFIZER", "NOVARTIS", "ABBVIE", "FDA-CTU", "TEVA"]
COUNTRY = [("UNITED STATES", "US"), ("CANADA", "CA"), ("JAPAN", "JP"), ("GERMANY", "DE"),
           ("FRANCE", "FR"), ("UNITED KINGDOM", "GB"), ("COUNTRY NOT SPECIFIED", "")]
# Per-cohort relative weights (exposed, control) and depression rates (exposed, control):
# the planted effect is depression less common among BoNT reports; bladder shows none,
# sialorrhea has no BoNT report with depression.
COHORT_PLAN = {
    "cosmetic": (10, 2, 0.04, 0.20), "migraine": (4, 12, 0.07, 0.25),
    "spasticity": (3, 9, 0.06, 0.22), "torticollis": (3, 4, 0.05, 0.22),
    "blepharospasm": (2, 1, 0.04, 0.20), "hyperhidrosis": (2, 2, 0.04, 0.20),
    "sialorrhea": (1, 2, 0.0, 0.18), "bladder": (2, 8, 0.18, 0.22),
}
DEFAULT_PLAN = (2, 4, 0.07, 0.20)
BG_EVENT_P = 0.05
# Case kinds drawn rarely among ordinary cases; each is also placed once by hand
# (exposed_ai_only only where prod_ai is written).
PLANTED_KINDS = ("antitoxin", "bont_other_indication", "antidep_exposed", "antidep_control",
                 "deprind_exposed", "deprind_control", "two_cohorts_exposed",
                 "two_cohorts_control", "orphan_indication")
RARE_KINDS = (*PLANTED_KINDS, "exposed_ai_only")

# The screen-signal layer (``generate(signals=N)``, :mod:`.signals`): drugs and
# reaction PTs that occur nowhere else in the generator and in none of the
# default study's term lists, so that the layer's drugs and PTs are independent
# of everything but the pairs it plants. Each (drugname, prod_ai) has its own
# ingredient, so a screen by drugname, prod_ai or ingredient sees one drug each.
SIGNAL_DRUGS = [
    ("ZYRTEC", "CETIRIZINE HYDROCHLORIDE"), ("PLAVIX", "CLOPIDOGREL BISULFATE"),
    ("COUMADIN", "WARFARIN SODIUM"), ("LASIX", "FUROSEMIDE"), ("SINGULAIR", "MONTELUKAST SODIUM"),
    ("CRESTOR", "ROSUVASTATIN CALCIUM"), ("JANUVIA", "SITAGLIPTIN PHOSPHATE"),
    ("LEVAQUIN", "LEVOFLOXACIN"), ("ALLOPURINOL", "ALLOPURINOL"),
    ("METOPROLOL TARTRATE", "METOPROLOL TARTRATE"), ("PROGRAF", "TACROLIMUS"),
    ("METHOTREXATE", "METHOTREXATE SODIUM"), ("XELJANZ", "TOFACITINIB CITRATE"),
    ("STELARA", "USTEKINUMAB"), ("OPDIVO", "NIVOLUMAB"), ("IBRANCE", "PALBOCICLIB"),
    ("ENTRESTO", "SACUBITRIL\\VALSARTAN"), ("OZEMPIC", "SEMAGLUTIDE"),
    ("JARDIANCE", "EMPAGLIFLOZIN"), ("FOSAMAX", "ALENDRONATE SODIUM"),
    ("ACCUTANE", "ISOTRETINOIN"), ("CHANTIX", "VARENICLINE TARTRATE"),
    ("AMBIEN", "ZOLPIDEM TARTRATE"), ("XANAX", "ALPRAZOLAM"), ("DIGOXIN", "DIGOXIN"),
    ("AVASTIN", "BEVACIZUMAB"), ("HERCEPTIN", "TRASTUZUMAB"), ("GILENYA", "FINGOLIMOD HYDROCHLORIDE"),
]
SIGNAL_PTS = [
    "RHABDOMYOLYSIS", "HEPATOTOXICITY", "ACUTE KIDNEY INJURY", "STEVENS-JOHNSON SYNDROME",
    "AGRANULOCYTOSIS", "PANCREATITIS", "INTERSTITIAL LUNG DISEASE", "ELECTROCARDIOGRAM QT PROLONGED",
    "TENDON RUPTURE", "OSTEONECROSIS OF JAW", "HYPOGLYCAEMIA", "HYPERKALAEMIA", "HYPONATRAEMIA",
    "THROMBOCYTOPENIA", "NEUTROPENIA", "ANAPHYLACTIC REACTION", "ANGIOEDEMA", "ALOPECIA",
    "PHOTOSENSITIVITY REACTION", "OEDEMA PERIPHERAL", "CONSTIPATION", "DRY MOUTH", "TINNITUS",
    "VISION BLURRED", "SOMNOLENCE", "TREMOR", "PARAESTHESIA", "SYNCOPE", "PALPITATIONS",
    "TACHYCARDIA", "BRADYCARDIA", "HYPOTENSION", "COUGH", "NASOPHARYNGITIS",
    "URINARY TRACT INFECTION", "PRURITUS", "URTICARIA", "ERYTHEMA", "MYALGIA", "ABDOMINAL PAIN",
    "DYSPEPSIA", "GASTROINTESTINAL HAEMORRHAGE", "EPISTAXIS", "CONTUSION", "DEEP VEIN THROMBOSIS",
    "PULMONARY EMBOLISM", "MYOCARDIAL INFARCTION", "CEREBROVASCULAR ACCIDENT", "RENAL FAILURE",
    "HEPATIC ENZYME INCREASED", "BLOOD CREATINE PHOSPHOKINASE INCREASED", "LACTIC ACIDOSIS",
    "DIABETIC KETOACIDOSIS", "SEIZURE", "CONFUSIONAL STATE", "HALLUCINATION", "AMNESIA",
    "WEIGHT INCREASED", "HYPERSENSITIVITY", "CHEST PAIN",
]

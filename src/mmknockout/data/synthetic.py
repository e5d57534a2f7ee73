"""Deterministic generator of the bundled demo dataset, in the real Amazon 2014 file formats.

``make_demo(out_dir)`` writes

* ``ratings_Demo.csv``: headerless ``user,asin,rating,unix_time`` (grouped by item, as upstream);
* ``meta_Demo.json.gz``: one Python-literal dict per line (``asin``, ``title``, ``price``,
  ``imUrl``, ``related``, ``salesRank``, ``brand``, ``categories``, ``description``);
* ``image_features_Demo.b``: 10-byte ASIN + 4096 little-endian float32 per record;
* ``images/<code>.png``: a small synthetic product image per item (:mod:`.demo_images`: a colour
  and a shape per product type), named by the item's ``imUrl``, a relative ``file:`` URL
  (``file:<image_url_base>/<code>.png``, resolved against the repository root by the image download);
* ``README.md``: how the files were made.

Planted structure (what a good model can learn):

* every item has one of ``n_types`` product types (stroller, car seat, ...) and one of four styles
  (organic, deluxe, travel, value). Titles, descriptions and category paths use type- and
  style-specific vocabulary, so a sentence encoder recovers both;
* image features carry only a *weak* type signal (no style) under large sparse non-negative noise,
  like ReLU'd CNN FC7 activations;
* every user prefers 1-3 types and usually one style, with a popularity skew over items; a share of
  choices is popularity-only noise. Text therefore carries preference signal that sparse
  interactions learn only slowly;
* about 3% of the rated items have no image record, and a few records/metadata rows belong to
  unrated items (skipped by the pipeline); a few users and items fall below 5 interactions, so the
  5-core removes them; a few exact duplicate rows exercise the de-duplication.

The ``.b`` file cannot be compressed (4096 float32 = 16 KiB per item), so the default has 260 rated
items, which keeps ``resources/demo`` under 5 MB.

Regenerate it with ``python -m mmknockout make-demo [OUT_DIR]``.

:func:`baby_like` makes the benchmark's data: Baby-shaped splits and features in memory.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_path, write_text
from . import graphs
from .amazon import write_image_features
from .dataset import SplitData
from .demo_images import write_demo_images

DEFAULT_SEED = 20140101
ALNUM = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))

# (type key, category path under "Baby", product nouns, features, description sentences)
PRODUCT_TYPES = [
    (
        "stroller",
        ["Strollers", "Standard"],
        ["Stroller", "Jogging Stroller", "Travel System Stroller", "Umbrella Stroller"],
        [
            "one-hand fold",
            "all-terrain wheels",
            "extendable canopy",
            "reclining seat",
            "large storage basket",
            "parent cup holder",
        ],
        [
            "Smooth ride on city sidewalks and park trails.",
            "Folds flat in seconds to fit any car trunk.",
            "Adjustable handlebar for parents of every height.",
            "Lockable front swivel wheels and foot brake.",
        ],
    ),
    (
        "carseat",
        ["Car Seats", "Convertible"],
        ["Convertible Car Seat", "Infant Car Seat", "Booster Seat", "Car Seat Base"],
        [
            "side impact protection",
            "5-point harness",
            "LATCH connectors",
            "energy-absorbing foam",
            "rear-facing mode",
            "no-rethread harness",
        ],
        [
            "Meets or exceeds federal crash test standards.",
            "Installs securely with LATCH or vehicle seat belt.",
            "Grows with your child from infant to toddler.",
            "Padded head support keeps baby safe on the road.",
        ],
    ),
    (
        "diaper",
        ["Diapering", "Disposable Diapers"],
        ["Diapers", "Diaper Pail", "Changing Pad", "Baby Wipes", "Diaper Cream"],
        [
            "wetness indicator",
            "leak guard",
            "hypoallergenic",
            "fragrance free",
            "extra absorbent core",
            "stretchy sides",
        ],
        [
            "Keeps baby dry for up to 12 hours.",
            "Gentle on sensitive skin and free of harsh chemicals.",
            "Soft waistband and leak protection for overnight use.",
            "Easy diaper changes at home or on the go.",
        ],
    ),
    (
        "feeding",
        ["Feeding", "Bottle-Feeding"],
        ["Baby Bottle", "Bottle Warmer", "Sippy Cup", "Formula Dispenser", "Bottle Brush"],
        ["anti-colic vent", "slow flow nipple", "BPA free", "dishwasher safe", "wide neck", "spill-proof valve"],
        [
            "Reduces colic, gas and spit-up during feeding.",
            "Natural latch nipple for easy switching between breast and bottle.",
            "Easy to clean and assemble.",
            "Measures formula and milk with clear markings.",
        ],
    ),
    (
        "nursery",
        ["Nursery", "Furniture"],
        ["Convertible Crib", "Crib Mattress", "Bassinet", "Changing Table", "Glider Rocker"],
        [
            "solid wood",
            "adjustable mattress height",
            "non-toxic finish",
            "waterproof cover",
            "converts to toddler bed",
            "firm support",
        ],
        [
            "Converts from crib to toddler bed and daybed.",
            "Sturdy construction with a non-toxic, lead-safe finish.",
            "Firm mattress support for safe infant sleep.",
            "A beautiful centerpiece for your baby's nursery.",
        ],
    ),
    (
        "toy",
        ["Toys", "Activity Centers"],
        ["Activity Gym", "Teether Toy", "Plush Rattle", "Stacking Rings", "Musical Mobile"],
        ["bright colors", "crinkle textures", "soft plush", "lights and melodies", "teething rings", "tummy time mat"],
        [
            "Stimulates baby's senses with colors, sounds and textures.",
            "Encourages grasping, kicking and tummy time play.",
            "Soothes sore gums during teething.",
            "Hours of developmental fun from birth and up.",
        ],
    ),
    (
        "bath",
        ["Bathing & Skin Care", "Bathing Tubs & Seats"],
        ["Baby Bathtub", "Hooded Towel", "Bath Seat", "Baby Shampoo", "Washcloths"],
        ["non-slip surface", "temperature indicator", "tear free", "quick-dry", "foldable tub", "gentle cleanser"],
        [
            "Makes bath time safe, fun and comfortable.",
            "Tear-free formula gently cleanses delicate skin and hair.",
            "Soft absorbent towel keeps baby warm after the bath.",
            "Slip-resistant design holds baby securely in the water.",
        ],
    ),
    (
        "monitor",
        ["Health & Baby Care", "Monitors"],
        ["Video Baby Monitor", "Audio Monitor", "Movement Monitor", "Digital Thermometer"],
        [
            "night vision",
            "two-way talk",
            "long range",
            "room temperature sensor",
            "sound activated",
            "rechargeable parent unit",
        ],
        [
            "Watch over your baby from any room in the house.",
            "Crystal clear audio and infrared night vision.",
            "Alerts you when baby cries or stops moving.",
            "Secure digital transmission with no interference.",
        ],
    ),
    (
        "carrier",
        ["Gear", "Backpacks & Carriers"],
        ["Baby Carrier", "Baby Wrap", "Ring Sling", "Hip Seat Carrier", "Hiking Backpack Carrier"],
        [
            "ergonomic seat",
            "lumbar support",
            "padded shoulder straps",
            "breathable mesh",
            "front and back carry",
            "adjustable waist belt",
        ],
        [
            "Hands-free comfort for parent and baby.",
            "Ergonomic M-position seat supports healthy hip development.",
            "Distributes weight evenly across hips and shoulders.",
            "Carry your baby facing in, facing out or on your back.",
        ],
    ),
    (
        "clothing",
        ["Clothing", "Bodysuits"],
        ["Bodysuit Set", "Footed Sleeper", "Swaddle Blanket", "Baby Hat and Mittens", "Sleep Sack"],
        ["snap closures", "soft knit", "envelope neckline", "tagless", "zip-up front", "machine washable"],
        [
            "Soft, breathable fabric for all-day comfort.",
            "Easy snap closures make dressing and changes quick.",
            "Keeps baby cozy and warm through the night.",
            "Gentle on delicate newborn skin.",
        ],
    ),
    (
        "safety",
        ["Safety", "Gates & Doorways"],
        ["Safety Gate", "Cabinet Locks", "Outlet Covers", "Corner Guards", "Door Knob Covers"],
        ["pressure mounted", "walk-through door", "auto-close", "adhesive mount", "no drilling", "childproof latch"],
        [
            "Keeps little explorers away from stairs and hazards.",
            "Installs in minutes without tools.",
            "Easy one-hand operation for adults, secure against curious hands.",
            "Childproof your home room by room.",
        ],
    ),
    (
        "pacifier",
        ["Pacifiers, Teethers & Teething Relief", "Pacifiers"],
        ["Pacifier", "Pacifier Clip", "Orthodontic Pacifier", "Teething Pacifier"],
        [
            "orthodontic nipple",
            "one-piece silicone",
            "glow in the dark",
            "ventilation holes",
            "shield",
            "sterilizing case",
        ],
        [
            "Soothes and calms fussy babies.",
            "Orthodontic shape supports natural palate and teeth development.",
            "Made from one piece of medical-grade silicone.",
            "Symmetrical nipple is always right side up.",
        ],
    ),
]

# (style key, title adjectives, description sentences, price multiplier)
STYLES = [
    (
        "organic",
        ["Organic", "Natural", "Eco-Friendly", "Organic Cotton"],
        [
            "Made from certified organic and plant-based materials.",
            "Eco-friendly, sustainably sourced and free of dyes.",
            "Gentle natural fibers for the conscious parent.",
        ],
        1.2,
    ),
    (
        "deluxe",
        ["Deluxe", "Premium", "Luxury", "Signature"],
        [
            "Premium materials and elegant leather-look trim.",
            "Luxury design with a premium finish and extra padding.",
            "Our top-of-the-line deluxe edition.",
        ],
        2.0,
    ),
    (
        "travel",
        ["Compact", "Lightweight", "Portable", "Travel"],
        [
            "Lightweight and compact for travel and small spaces.",
            "Packs into a carry bag for airplanes and road trips.",
            "Portable design goes wherever your family goes.",
        ],
        1.0,
    ),
    (
        "value",
        ["Essentials", "Basic", "Value Pack", "Everyday"],
        [
            "Great value for everyday use.",
            "Affordable essentials every new parent needs.",
            "Simple, dependable and budget friendly.",
        ],
        0.6,
    ),
]

BRANDS = [
    "Little Sprout",
    "BabyNest",
    "Cuddle Co.",
    "Happy Hatch",
    "Tiny Trails",
    "Moonbeam Baby",
    "Snugglebug",
    "Peapod Kids",
    "Bright Acorn",
    "Kiddo Works",
    "Lullaby Lane",
    "Nurture Bay",
    "Bambino Basics",
    "Wee Wonders",
    "Honeybee Baby",
    "Sunny Cradle",
]


def _random_ids(rng: np.random.Generator, n: int, prefix: str, length: int, taken: set | None = None) -> list[str]:
    """``n`` distinct random ids ``prefix`` + upper-case/digit characters (deterministic for ``rng``)."""
    out: list[str] = []
    seen = set(taken or ())
    while len(out) < n:
        chars = ALNUM[rng.integers(0, ALNUM.size, size=(2 * (n - len(out)) + 8, length - len(prefix)))]
        for row in chars:
            s = prefix + "".join(row)
            if s not in seen:
                seen.add(s)
                out.append(s)
                if len(out) == n:
                    break
    return out


def _item_catalog(rng: np.random.Generator, n: int, n_types: int) -> pd.DataFrame:
    types = np.concatenate([np.arange(n_types), rng.integers(0, n_types, size=max(0, n - n_types))])[:n]
    rng.shuffle(types)
    styles = rng.integers(0, len(STYLES), size=n)
    rows = []
    for t, s in zip(types, styles, strict=True):
        key, cats, nouns, feats, sents = PRODUCT_TYPES[t]
        skey, adjs, ssents, mult = STYLES[s]
        brand = BRANDS[int(rng.integers(len(BRANDS)))]
        f = rng.choice(len(feats), size=2, replace=False)
        title = f"{brand} {adjs[rng.integers(len(adjs))]} {nouns[rng.integers(len(nouns))]} with {feats[f[0]].title()}"
        if rng.random() < 0.4:
            title += f", {['White', 'Gray', 'Navy', 'Mint', 'Pink', 'Black', 'Oatmeal'][rng.integers(7)]}"
        desc_parts = list(rng.choice(sents, size=2, replace=False)) + [ssents[rng.integers(len(ssents))]]
        desc_parts.insert(int(rng.integers(0, 3)), f"Features {feats[f[0]]} and {feats[f[1]]}.")
        description = " ".join(desc_parts)
        if rng.random() < 0.15:
            description = description.replace(". ", ".\n", 1)  # a newline, as in real listings
        rows.append(
            {
                "type": int(t),
                "style": int(s),
                "title": title,
                "brand": brand,
                "categories": [["Baby"] + list(cats)],
                "description": description,
                "price": round(
                    float(rng.gamma(4.0, 8.0) * mult * (3.0 if key in ("stroller", "carseat", "nursery") else 1.0)), 2
                ),
            }
        )
    return pd.DataFrame(rows)


def _interactions(
    rng: np.random.Generator, n_users: int, items: pd.DataFrame, n_types: int, mean_len: float, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Users x items draws without replacement via the Gumbel top-k trick (vectorised)."""
    n_items = len(items)
    pop = rng.lognormal(0.0, 0.9, size=n_items)
    pop[rng.choice(n_items, size=max(1, n_items // 40), replace=False)] *= 0.03  # a few rare items
    # type preferences: 1-3 liked types with Dirichlet weights
    n_pref = rng.choice([1, 2, 3], size=n_users, p=[0.35, 0.4, 0.25])
    scores = rng.random((n_users, n_types))
    rank = np.argsort(np.argsort(-scores, axis=1), axis=1)
    liked = rank < n_pref[:, None]
    w = rng.dirichlet(np.ones(n_types) * 2.0, size=n_users) * liked
    w /= w.sum(axis=1, keepdims=True)
    type_pref = 0.02 + w  # [users, types]
    style_pref = np.ones((n_users, len(STYLES)))
    has_style = rng.random(n_users) < 0.8
    style_pref[np.flatnonzero(has_style), rng.integers(0, len(STYLES), size=n_users)[has_style]] = 6.0
    t, s = items["type"].to_numpy(), items["style"].to_numpy()
    pref = type_pref[:, t] * style_pref[:, s]
    pref /= pref.sum(axis=1, keepdims=True)
    p = (1 - noise) * pref * pop / (pref * pop).sum(axis=1, keepdims=True) + noise * pop / pop.sum()
    # lengths: most users 5+, about 8% below 5 so the k-core removes them
    lengths = 5 + rng.negative_binomial(2, 2.0 / (2.0 + mean_len - 5), size=n_users)
    short = rng.random(n_users) < 0.08
    lengths[short] = rng.integers(2, 5, size=short.sum())
    lengths = np.minimum(lengths, n_items // 2)
    gumbel = -np.log(-np.log(rng.random((n_users, n_items))))
    order = np.argsort(-(np.log(p) + gumbel), axis=1)
    take = np.arange(n_items)[None, :] < lengths[:, None]
    users = np.repeat(np.arange(n_users), lengths)
    chosen = order[take]  # row-major: user by user
    return users, chosen


def _image_features(rng: np.random.Generator, types: np.ndarray, n_types: int, dim: int, signal: float) -> np.ndarray:
    """Sparse non-negative FC7-like vectors: ReLU(signal * type prototype + noise), scaled."""
    proto = (rng.random((n_types, dim)) < 0.12) * rng.gamma(2.0, 1.0, size=(n_types, dim))
    base = rng.gamma(1.5, 0.4, size=dim)  # per-dimension scale shared by all items
    pre = signal * proto[types] + rng.normal(-0.9, 1.0, size=(len(types), dim)) * base[None, :]
    return np.maximum(pre, 0.0).astype(np.float32)


def make_demo(
    out_dir: str | os.PathLike,
    seed: int = DEFAULT_SEED,
    n_users: int = 1080,
    n_items: int = 260,
    n_types: int = 10,
    mean_len: float = 12.0,
    noise: float = 0.15,
    image_signal: float = 0.13,
    missing_image: float = 0.03,
    extra_items: int = 4,
    dim: int = 4096,
    name: str = "Demo",
    image_url_base: str = "resources/demo/images",
) -> dict:
    """Write the demo dataset into ``out_dir``; returns a summary (raw counts and file names).

    ``n_users`` and ``n_items`` are the raw counts before the 5-core; the defaults give about
    1,000 users, 250 items and 11-12k interactions after it. Same arguments, same bytes.
    ``image_url_base`` is where the images are found relative to the repository root (the
    metadata's ``imUrl``; the images themselves are written to ``out_dir/images``).
    """
    if not 1 <= n_types <= len(PRODUCT_TYPES):
        raise ValueError(f"n_types must be in 1..{len(PRODUCT_TYPES)}")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    catalog = _item_catalog(rng, n_items + extra_items, n_types)
    asins = _random_ids(rng, len(catalog), "B00", 10)
    catalog["asin"] = asins
    rated = catalog.iloc[:n_items].reset_index(drop=True)
    user_ids = _random_ids(rng, n_users, "A", 14)

    u, i = _interactions(rng, n_users, rated, n_types, mean_len, noise)
    n = len(u)
    ts = rng.integers(1262304000, 1404172800, size=n)  # 2010-01-01 .. 2014-07-01
    rating = rng.choice([1.0, 2.0, 3.0, 4.0, 5.0], size=n, p=[0.07, 0.06, 0.1, 0.2, 0.57])
    ratings = pd.DataFrame(
        {"user": np.array(user_ids)[u], "asin": rated["asin"].to_numpy()[i], "rating": rating, "time": ts}
    )
    dup = ratings.sample(n=max(1, n // 100), random_state=np.random.RandomState(seed % 2**32))
    ratings = pd.concat([ratings, dup], ignore_index=True)
    # grouped by item as the 2014 files; items in a random order, within an item by time
    item_rank = pd.Series(rng.permutation(n_items), index=rated["asin"])
    ratings["_r"] = item_rank.reindex(ratings["asin"]).to_numpy()
    ratings = ratings.sort_values(["_r", "time", "user"], kind="stable").drop(columns="_r")
    csv = ratings.to_csv(header=False, index=False, float_format="%.1f", lineterminator="\n")
    write_text(out_dir / f"ratings_{name}.csv", csv)

    # metadata: one Python-literal line per item (rated + a few unrated), in a shuffled order
    by_type = {t: catalog.loc[catalog["type"] == t, "asin"].tolist() for t in range(n_types)}
    lines = []
    img_codes = _random_ids(rng, len(catalog), "", 11)
    for k in rng.permutation(len(catalog)):
        row = catalog.iloc[k]
        peers = [a for a in by_type[row["type"]] if a != row["asin"]]
        rec = {
            "asin": str(row["asin"]),
            "title": str(row["title"]),
            "price": float(row["price"]),
            "imUrl": f"file:{image_url_base}/{img_codes[k]}.png",
        }
        if peers:
            m = int(min(len(peers), rng.integers(1, 6)))
            rec["related"] = {"also_bought": [str(peers[j]) for j in rng.choice(len(peers), m, replace=False)]}
        rec["salesRank"] = {"Baby": int(rng.integers(100, 200000))}
        if rng.random() > 0.12:
            rec["brand"] = str(row["brand"])
        rec["categories"] = [[str(c) for c in path] for path in row["categories"]]
        if rng.random() > 0.05:
            rec["description"] = str(row["description"])
        lines.append(repr(rec))
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(("\n".join(lines) + "\n").encode("utf-8"))
    with atomic_path(out_dir / f"meta_{name}.json.gz", suffix=".gz") as tmp:
        tmp.write_bytes(buf.getvalue())

    # image features: rated items minus ~3%, plus the unrated extras; shuffled record order
    feats = _image_features(rng, catalog["type"].to_numpy(), n_types, dim, image_signal)
    n_missing = int(round(missing_image * n_items))
    without = set(rng.choice(n_items, size=n_missing, replace=False).tolist()) if n_missing else set()
    recs = [k for k in rng.permutation(len(catalog)) if k not in without]
    write_image_features(out_dir / f"image_features_{name}.b", [asins[k] for k in recs], feats[recs])
    write_demo_images(out_dir / "images", img_codes, catalog["type"].to_numpy(), seed)

    summary = {
        "seed": seed,
        "raw_users": n_users,
        "raw_items": n_items,
        "raw_rows": len(ratings),
        "duplicate_rows": len(dup),
        "image_records": len(recs),
        "items_without_image": n_missing,
        "types": n_types,
        "images": len(catalog),
        "image_url": f"file:{image_url_base}/<name>.png",
        "files": [f"ratings_{name}.csv", f"meta_{name}.json.gz", f"image_features_{name}.b"],
    }
    write_text(out_dir / "README.md", _readme(summary, name))
    return summary


def _readme(s: dict, name: str) -> str:
    return f"""# Demo dataset (synthetic, Amazon 2014 formats)

Generated by `python -m mmknockout make-demo` (`mmknockout.data.synthetic.make_demo`, seed
{s["seed"]}); regenerating gives the same bytes.

| file | format |
|---|---|
| `ratings_{name}.csv` | headerless `user,asin,rating,unix_time`, grouped by item ({s["raw_rows"]} rows, {s["duplicate_rows"]} exact duplicates) |
| `meta_{name}.json.gz` | gzip, one Python-literal dict per line (asin, title, price, imUrl, related, salesRank, brand, categories, description) |
| `image_features_{name}.b` | records of a 10-byte ASIN + 4096 little-endian float32 ({s["image_records"]} records) |
| `images/*.png` | one 64x64 synthetic product image per item ({s["images"]} files): a colour and a shape per product type, slight per-item variation; each item's `imUrl` is the relative URL `{s["image_url"]}`, a path relative to the repository root (the registry's `image_schemes: [file]` lets this dataset's image download read it) |

Raw: {s["raw_users"]} users, {s["raw_items"]} rated items of {s["types"]} product types;
{s["items_without_image"]} rated items have no image record (they get the mean vector).
Items carry their type and style in the text (title, categories, description); image vectors carry
a weaker type signal under sparse non-negative noise. Users prefer 1-3 types and usually one style.
The data are synthetic; no real user or product is described.
"""


# ---------------------------------------------------------------- Baby-shaped splits in memory (benchmark)
# Planted item clusters, Zipf popularity and a per-user split shaped like Amazon Baby after the
# 5-core (19,445 users, 7,050 items, 160,792 interactions, 384-d text and 4096-d image features);
# ``scale`` multiplies the interactions (users and items stay), to measure how cost grows.

BABY = {"n_users": 19445, "n_items": 7050, "n_interactions": 160792, "text_dim": 384, "image_dim": 4096}


def synthetic_split(
    n_users: int, n_items: int, n_interactions: int, seed: int = 0, n_clusters: int = 32
) -> tuple[SplitData, np.ndarray]:
    """(split, item cluster ids); every user has at least 5 interactions and at most half the items."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, n_clusters, n_items)
    popularity = rng.permutation(np.arange(1, n_items + 1, dtype=float) ** -0.8)
    weight = rng.lognormal(0.0, 1.0, n_users)
    extra = n_interactions - 5 * n_users
    per_user = 5 + np.floor(weight / weight.sum() * extra).astype(int)
    per_user[: n_interactions - per_user.sum()] += 1
    per_user = np.minimum(per_user, n_items // 2)
    users = np.repeat(np.arange(n_users), per_user)
    favourite = rng.integers(0, n_clusters, n_users)[users]
    # three candidate draws per slot from the favourite cluster's boosted popularity; duplicates dropped
    weights = popularity[None, :] * np.where(cluster[None, :] == np.arange(n_clusters)[:, None], 8.0, 1.0)
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]
    draws = rng.random((3, users.size))
    items = np.empty((3, users.size), dtype=np.int64)
    for c in range(n_clusters):  # loop over clusters, vectorised over all users who favour it
        idx = np.flatnonzero(favourite == c)
        items[:, idx] = np.searchsorted(cdf[c], draws[:, idx])
    items = np.minimum(items, n_items - 1)
    pairs = np.unique(np.stack([np.tile(users, 3), items.reshape(-1)], axis=1), axis=0)
    order = rng.permutation(len(pairs))
    pairs = pairs[order[np.argsort(pairs[order, 0], kind="stable")]]  # shuffled within each user
    have = np.bincount(pairs[:, 0], minlength=n_users)
    rank = np.arange(len(pairs)) - np.repeat(np.cumsum(have) - have, have)
    pairs = pairs[rank < per_user[pairs[:, 0]]]  # each user keeps its planned number of items
    u, i = pairs[:, 0], pairs[:, 1]
    n = np.bincount(u, minlength=n_users)
    rank = np.arange(u.size) - np.repeat(np.cumsum(n) - n, n)
    n_u = n[u]
    holdout = np.where(n_u < 10, 2, np.floor(0.2 * n_u).astype(int))
    n_valid = np.where(n_u < 10, 1, holdout // 2)
    train_size = n_u - holdout
    labels = np.where(rank < train_size, 0, np.where(rank < train_size + n_valid, 1, 2))
    data = SplitData(n_users, n_items, u, i, labels, name="synthetic")
    return data, cluster


def synthetic_features(cluster: np.ndarray, text_dim: int, image_dim: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    k = cluster.max() + 1
    text = rng.normal(size=(k, text_dim))[cluster] + 0.3 * rng.normal(size=(cluster.size, text_dim))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    image = np.maximum(0, 0.3 * rng.normal(size=(k, image_dim))[cluster] + rng.normal(size=(cluster.size, image_dim)))
    return {"text": text.astype(np.float32), "image": image.astype(np.float32)}


def baby_like(
    scale: float = 1.0, seed: int = 0, shape: dict[str, int] | None = None
) -> tuple[SplitData, dict[str, np.ndarray]]:
    """Baby-shaped data (or ``shape``, same keys as :data:`BABY`) with ``scale`` x the interactions."""
    shape = shape or BABY
    data, cluster = synthetic_split(shape["n_users"], shape["n_items"], int(shape["n_interactions"] * scale), seed)
    data.user_graph = graphs.user_graph(data, k=200)
    data.item_graph = graphs.item_graph(data, k=2, min_count=2)
    return data, synthetic_features(cluster, shape["text_dim"], shape["image_dim"], seed)

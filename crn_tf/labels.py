"""Label sets: classes, their ids and colours, and the one mapping from label values to classes.

A label map is turned into *class indices* (uint8, 0..num_classes-1, 255 = void) and then
into the network's one-hot layout with one channel per class plus a last void channel.
For Cityscapes the class indices are the official "trainIds" (19 classes).

This module is the one home of the label-value mapping: `LabelSet.value_table` says what
every value of a label format (ids, class indices, colours keyed by `pack_rgb`) means,
`classify_values` applies it and counts the values outside the set, `values_to_classes`
raises on them, and `void_id_for` / `void_color_for` are the one rule for writing void. The readers,
the scan, the tf.data pipeline (its TensorFlow tables are built from `value_table`), prepare
and the synthetic city all go through these. All are vectorised lookups (no Python loop over
classes or pixels).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

VOID = 255
"""Class index of void pixels in a class-index map (the Cityscapes trainId convention)."""

UNKNOWN = -1
"""What a `ValueTable` maps a value outside the label set to (read as void, or reported)."""

LABEL_FORMATS = ("ids", "trainids", "colors")
"""How a label map codes classes: label-set ids, class indices (Cityscapes trainIds), or colours."""

RGB_KEY_WEIGHTS = (1 << 16, 1 << 8, 1)
"""A colour's key is r * 65536 + g * 256 + b (`pack_rgb`; the tf.data pipeline applies the same weights)."""

Color = tuple[int, int, int]


class LabelError(ValueError):
    """A label map holds values outside its label set; the message names the file and values."""


@dataclasses.dataclass(frozen=True)
class LabelClass:
    """One class of a label set: its name, the id stored in label PNGs, and its colour."""

    name: str
    id: int
    color: Color


def pack_rgb(rgb: np.ndarray | Color) -> np.ndarray:
    """Colours [..., 3] (a 4th channel, alpha, is ignored) -> int32 keys r * 65536 + g * 256 + b.

    The one colour key of the package (the lookups, the scan and the tf.data pipeline all use
    it); keys sort as the (r, g, b) tuples do, so colours are listed in that order.
    """
    rgb = np.asarray(rgb)[..., :3].astype(np.int32)
    red, green, blue = RGB_KEY_WEIGHTS
    return rgb[..., 0] * red + rgb[..., 1] * green + rgb[..., 2] * blue


def unpack_rgb(key: int) -> Color:
    """A `pack_rgb` key -> its (r, g, b) colour."""
    key = int(key)
    return (key >> 16) & 255, (key >> 8) & 255, key & 255


@dataclasses.dataclass(frozen=True)
class ValueTable:
    """What the values of one label format mean: each of `keys` (sorted ids, class indices or
    `pack_rgb` colours) becomes the class index beside it in `classes` (VOID for a void value),
    and every other value becomes `other`: VOID when the set makes every other value void,
    else UNKNOWN (an error, or void when asked)."""

    label_format: str
    keys: np.ndarray  # int32 [n], increasing
    classes: np.ndarray  # int16 [n]: a class index or VOID
    other: int  # VOID or UNKNOWN

    def dense(self) -> np.ndarray:
        """int16 [256]: value -> class index, for the single-channel formats (ids, class indices)."""
        if self.label_format == "colors":
            raise ValueError("a colour table has no dense form (its keys are 24-bit)")
        table = np.full(256, self.other, dtype=np.int16)
        table[self.keys] = self.classes
        return table


@dataclasses.dataclass(frozen=True)
class LabelSet:
    """The classes a model knows, and how void is written in label files.

    Args:
        name: str. A short name, e.g. "cityscapes".
        classes: the classes in channel order (class index i is channel i of the layout).
        void_ids: ids that mean void in id-coded label PNGs. `None` means every id that
            is not a class id is void (nothing is then an error).
        void_colors: colours that mean void in colour-coded label PNGs. `None` means every
            colour that is not a class colour is void.
    """

    name: str
    classes: tuple[LabelClass, ...]
    void_ids: tuple[int, ...] | None = ()
    void_colors: tuple[Color, ...] | None = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        if not self.classes:
            raise ValueError(f"label set {self.name!r} has no classes")
        if len(self.classes) >= VOID:
            raise ValueError(f"label set {self.name!r} has {len(self.classes)} classes; at most 254 are supported")
        ids = [c.id for c in self.classes]
        colors = [tuple(c.color) for c in self.classes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"label set {self.name!r}: class ids repeat: {ids}")
        if len(set(colors)) != len(colors):
            raise ValueError(f"label set {self.name!r}: class colours repeat: {colors}")
        for c in self.classes:
            if not 0 <= c.id <= 255:
                raise ValueError(f"label set {self.name!r}: class {c.name!r} has id {c.id}, outside 0..255")
            if len(c.color) != 3 or not all(0 <= v <= 255 for v in c.color):
                raise ValueError(f"label set {self.name!r}: class {c.name!r} has colour {c.color}, not RGB 0..255")
        if self.void_ids is not None:
            object.__setattr__(self, "void_ids", tuple(int(i) for i in self.void_ids))
            clash = set(self.void_ids) & set(ids)
            if clash:
                raise ValueError(f"label set {self.name!r}: ids {sorted(clash)} are both a class and void")
        if self.void_colors is not None:
            object.__setattr__(self, "void_colors", tuple(tuple(int(v) for v in c) for c in self.void_colors))
            clash = set(self.void_colors) & set(colors)
            if clash:
                raise ValueError(f"label set {self.name!r}: colours {sorted(clash)} are both a class and void")

    # --- basic facts ------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of real classes (the layout has one more channel, for void)."""
        return len(self.classes)

    @property
    def num_channels(self) -> int:
        """Channels of the one-hot layout: the classes and void."""
        return len(self.classes) + 1

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def colors(self) -> np.ndarray:
        """Class colours, uint8 [num_classes, 3]."""
        return np.array([c.color for c in self.classes], dtype=np.uint8)

    # --- lookup tables ------------------------------------------------------------------
    def value_table(self, label_format: str) -> "ValueTable":
        """What every value of `label_format` ("ids", "trainids" or "colors") means in this set."""
        if label_format == "ids":
            pairs = [(c.id, i) for i, c in enumerate(self.classes)]
            pairs += [(i, VOID) for i in self.void_ids or () if 0 <= i <= 255]
            other = VOID if self.void_ids is None else UNKNOWN
        elif label_format == "trainids":
            pairs = [(i, i) for i in range(self.num_classes)] + [(VOID, VOID)]
            other = UNKNOWN
        elif label_format == "colors":
            pairs = [(int(pack_rgb(c.color)), i) for i, c in enumerate(self.classes)]
            pairs += [(int(pack_rgb(c)), VOID) for c in self.void_colors or ()]
            other = VOID if self.void_colors is None else UNKNOWN
        else:
            raise ValueError(f"label_format must be one of {LABEL_FORMATS}, got {label_format!r}")
        pairs = sorted(dict(pairs).items())  # a value listed twice (a repeated void colour) once
        keys = np.array([k for k, _ in pairs], dtype=np.int32)
        classes = np.array([c for _, c in pairs], dtype=np.int16)
        return ValueTable(label_format, keys, classes, other)

    def id_table(self) -> np.ndarray:
        """int16 [256]: label id -> class index, VOID for void ids, -1 for ids outside the set."""
        return self.value_table("ids").dense()

    # --- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict; `LabelSet.from_dict` reads it back."""
        return {
            "name": self.name,
            "classes": [{"name": c.name, "id": c.id, "color": list(c.color)} for c in self.classes],
            "void": {
                "ids": "other" if self.void_ids is None else list(self.void_ids),
                "colors": "other" if self.void_colors is None else [list(c) for c in self.void_colors],
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "label set") -> "LabelSet":
        """Builds a label set from the dict written by `to_dict` (the JSON label-set format)."""
        try:
            classes = tuple(
                LabelClass(str(c["name"]), int(c["id"]), tuple(int(v) for v in c["color"])) for c in data["classes"]
            )
            void = data.get("void", {})
            void_ids = void.get("ids", "other")
            void_colors = void.get("colors", "other")
            return cls(
                name=str(data.get("name", "custom")),
                classes=classes,
                void_ids=None if void_ids == "other" else tuple(int(i) for i in void_ids),
                void_colors=None if void_colors == "other" else tuple(tuple(int(v) for v in c) for c in void_colors),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{source}: not a valid label set ({error})") from error

    def save_json(self, path: str | os.PathLike) -> None:
        from crn_tf.core.files import write_atomic

        write_atomic(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> "LabelSet":
        """Reads a label set from a JSON file (format in the README, "Train on your own data")."""
        try:
            with open(path) as f:
                data = json.load(f)
        except OSError as error:
            raise ValueError(f"{path}: cannot read label set ({error.strerror})") from error
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from error
        return cls.from_dict(data, source=str(path))


# --- Cityscapes ---------------------------------------------------------------------------
CITYSCAPES_CLASSES: tuple[LabelClass, ...] = (
    LabelClass("road", 7, (128, 64, 128)),
    LabelClass("sidewalk", 8, (244, 35, 232)),
    LabelClass("building", 11, (70, 70, 70)),
    LabelClass("wall", 12, (102, 102, 156)),
    LabelClass("fence", 13, (190, 153, 153)),
    LabelClass("pole", 17, (153, 153, 153)),
    LabelClass("traffic light", 19, (250, 170, 30)),
    LabelClass("traffic sign", 20, (220, 220, 0)),
    LabelClass("vegetation", 21, (107, 142, 35)),
    LabelClass("terrain", 22, (152, 251, 152)),
    LabelClass("sky", 23, (70, 130, 180)),
    LabelClass("person", 24, (220, 20, 60)),
    LabelClass("rider", 25, (255, 0, 0)),
    LabelClass("car", 26, (0, 0, 142)),
    LabelClass("truck", 27, (0, 0, 70)),
    LabelClass("bus", 28, (0, 60, 100)),
    LabelClass("train", 31, (0, 80, 100)),
    LabelClass("motorcycle", 32, (0, 0, 230)),
    LabelClass("bicycle", 33, (119, 11, 32)),
)

CITYSCAPES_VOID_COLORS: dict[str, Color] = {
    "unlabeled/ego vehicle/rectification border/out of roi/static": (0, 0, 0),
    "dynamic": (111, 74, 0),
    "ground": (81, 0, 81),
    "parking": (250, 170, 160),
    "rail track": (230, 150, 140),
    "guard rail": (180, 165, 180),
    "bridge": (150, 100, 100),
    "tunnel": (150, 120, 90),
    "caravan": (0, 0, 90),
    "trailer": (0, 0, 110),
}

# Cityscapes label ids 0..33 that are not evaluation classes, plus 255 (-1, licence plate,
# as a uint8 PNG stores it).
CITYSCAPES_VOID_IDS: tuple[int, ...] = tuple(
    i for i in list(range(34)) + [255] if i not in {c.id for c in CITYSCAPES_CLASSES}
)

CITYSCAPES = LabelSet(
    name="cityscapes",
    classes=CITYSCAPES_CLASSES,
    void_ids=CITYSCAPES_VOID_IDS,
    void_colors=tuple(CITYSCAPES_VOID_COLORS.values()),
)
"""The 19 Cityscapes evaluation classes (trainIds 0..18) and Cityscapes' void ids and colours."""


def resolve_label_set(label_set: "LabelSet | str | os.PathLike | dict | None") -> LabelSet:
    """A LabelSet from a LabelSet, a dict, the name "cityscapes", a JSON path, or None (Cityscapes)."""
    if label_set is None:
        return CITYSCAPES
    if isinstance(label_set, LabelSet):
        return label_set
    if isinstance(label_set, dict):
        return LabelSet.from_dict(label_set)
    if str(label_set).lower() == "cityscapes":
        return CITYSCAPES
    return LabelSet.load_json(label_set)


# --- label values -> class indices ----------------------------------------------------------
def classify_values(
    values: np.ndarray, label_set: LabelSet = CITYSCAPES, label_format: str = "ids"
) -> tuple[np.ndarray, dict]:
    """Label values of any format -> (class indices uint8, 255 = void, {unknown value: pixels}).

    `values` are ids or class indices [H, W] (any integer type) or colours [H, W, 3 or 4]
    (alpha ignored). Values outside the label set become void in the map and are counted in
    the dict, in increasing order: ints, or (r, g, b) tuples for colours. Never raises for data.
    """
    table = label_set.value_table(label_format)
    if label_format == "colors":
        keys = pack_rgb(values)
        position = np.minimum(np.searchsorted(table.keys, keys), len(table.keys) - 1)
        mapped = np.where(table.keys[position] == keys, table.classes[position], table.other)
    else:
        keys = np.asarray(values)
        if keys.dtype == np.uint8:
            mapped = table.dense()[keys]
        else:  # any integer type: values outside 0..255 are outside every label set
            keys = keys.astype(np.int64)
            inside = (keys >= 0) & (keys <= 255)
            mapped = np.where(inside, table.dense()[np.where(inside, keys, 0)], UNKNOWN)
    unknown = mapped == UNKNOWN
    counts: dict = {}
    if unknown.any():
        found, pixels = np.unique(keys[unknown], return_counts=True)
        label = unpack_rgb if label_format == "colors" else int
        counts = {label(v): int(n) for v, n in zip(found.tolist(), pixels.tolist())}
        mapped = np.where(unknown, VOID, mapped)
    return mapped.astype(np.uint8), counts


def _describe(source: str | None) -> str:
    return source if source else "label map"


def _unknown_message(counts: dict, label_set: LabelSet, label_format: str, source: str | None) -> str:
    if label_format == "colors":
        listing = ", ".join(f"({r},{g},{b}) ({n} pixels)" for (r, g, b), n in counts.items())
        return (f"{_describe(source)}: colours that are neither a class nor void in the {label_set.name} "
                f"label set: {listing}")
    if label_format == "ids":
        listing = ", ".join(f"id {v} ({n} pixels)" for v, n in counts.items())
        return f"{_describe(source)}: ids outside the {label_set.name} label set: {listing}"
    listing = ", ".join(f"{v} ({n} pixels)" for v, n in counts.items())
    return f"{_describe(source)}: class indices outside 0..{label_set.num_classes - 1} and {VOID} (void): {listing}"


def values_to_classes(
    values: np.ndarray,
    label_set: LabelSet = CITYSCAPES,
    label_format: str = "ids",
    unknown: str = "error",
    source: str | None = None,
) -> np.ndarray:
    """A label map of `label_format` -> class indices, uint8, 255 = void.

    Values outside the label set raise LabelError naming `source`, the values and their pixel
    counts, unless `unknown="void"` (then they are void). A map of the wrong shape raises too.
    """
    if unknown not in ("error", "void"):
        raise ValueError(f"unknown must be 'error' or 'void', got {unknown!r}")
    values = np.asarray(values)
    if label_format == "colors":
        if values.ndim != 3 or values.shape[-1] not in (3, 4):
            raise LabelError(f"{_describe(source)}: expected a colour image [H, W, 3], got shape {values.shape}")
    elif values.ndim != 2:
        what = "id" if label_format == "ids" else "class"
        raise LabelError(f"{_describe(source)}: expected a single-channel {what} map, got shape {values.shape}")
    if label_format == "ids" and values.dtype != np.uint8 and values.size and (values.min() < 0 or values.max() > 255):
        raise LabelError(f"{_describe(source)}: ids must lie in 0..255, found {values.min()}..{values.max()}")
    classes, counts = classify_values(values, label_set, label_format)
    if counts and unknown == "error":
        raise LabelError(_unknown_message(counts, label_set, label_format, source))
    return classes


def ids_to_classes(ids: np.ndarray, label_set: LabelSet = CITYSCAPES, source: str | None = None) -> np.ndarray:
    """Id-coded label map (e.g. Cityscapes `*_labelIds.png`) -> class indices, uint8, 255 = void.

    Raises LabelError naming `source`, the unknown ids and their pixel counts when an id is
    neither a class nor void in `label_set`.
    """
    return values_to_classes(ids, label_set, "ids", source=source)


def check_class_indices(classes: np.ndarray, label_set: LabelSet = CITYSCAPES, source: str | None = None) -> np.ndarray:
    """Validates a class-index map (e.g. Cityscapes `*_labelTrainIds.png`): 0..n-1 or 255."""
    return values_to_classes(classes, label_set, "trainids", source=source)


def colors_to_classes(
    rgb: np.ndarray,
    label_set: LabelSet = CITYSCAPES,
    unknown: str = "error",
    source: str | None = None,
) -> np.ndarray:
    """Colour-coded label image [H, W, 3] -> class indices, uint8, 255 = void.

    Class colours become their class, the label set's void colours become void. Any other
    colour raises LabelError naming `source`, the colours and their pixel counts, unless
    `unknown="void"` (then it is void too) or the label set declares every other colour void.
    An alpha channel, if present, is ignored.
    """
    return values_to_classes(rgb, label_set, "colors", unknown, source)


# --- writing void ---------------------------------------------------------------------------
def void_id_for(label_set: LabelSet) -> int | None:
    """The id that writes void in an id-coded (grey) label PNG, or None if the set has none.

    The set's first void id; when every id that is not a class is void, 255 unless a class
    has it (then the lowest free id). 255 because a grey PNG is read back either as label-set
    ids, where any free id is void, or as class indices (trainIds), where only 255 is: 255
    reads as void both ways (and is Cityscapes' -1 as a uint8 PNG stores it), 0 as class 0.
    """
    if label_set.void_ids:
        return int(label_set.void_ids[0])
    if label_set.void_ids is None:
        taken = {c.id for c in label_set.classes}
        return next(i for i in (VOID, *range(VOID)) if i not in taken)
    return None


def void_color_for(label_set: LabelSet) -> Color | None:
    """The colour that writes void in a colour-coded label PNG, or None if the set has none.

    The set's first void colour; when every colour that is not a class is void, black (the
    Cityscapes and original-release void colour) unless a class has it, then white, then the
    first free grey. A colour PNG is read back only by colour, so any free colour reads as void.
    """
    if label_set.void_colors:
        return tuple(int(v) for v in label_set.void_colors[0])
    if label_set.void_colors is None:
        taken = {tuple(c.color) for c in label_set.classes}
        candidates = [(0, 0, 0), (255, 255, 255)] + [(v, v, v) for v in range(1, 255)]
        return next(c for c in candidates if c not in taken)
    return None


# --- class indices -> layouts, colours and ids ---------------------------------------------
def classes_to_onehot(classes: np.ndarray, num_classes: int, dtype: Any = np.float32) -> np.ndarray:
    """Class indices [..., H, W] -> one-hot layout [..., H, W, num_classes + 1]; last channel = void.

    Void (255) and anything >= num_classes land in the void channel, so channels sum to 1.
    """
    classes = np.asarray(classes).astype(np.int64)
    index = np.where((classes >= num_classes) | (classes < 0), num_classes, classes)
    return np.eye(num_classes + 1, dtype=dtype)[index]


def onehot_to_classes(layout: np.ndarray) -> np.ndarray:
    """One-hot (or soft) layout [..., C+1] -> class indices, uint8, 255 where void wins."""
    layout = np.asarray(layout)
    index = np.argmax(layout, axis=-1)
    return np.where(index == layout.shape[-1] - 1, VOID, index).astype(np.uint8)


def classes_to_colors(classes: np.ndarray, label_set: LabelSet = CITYSCAPES, void_color: Color = (0, 0, 0)) -> np.ndarray:
    """Class indices [..., H, W] -> colour image [..., H, W, 3] uint8 (void and unknown -> void_color)."""
    palette = np.tile(np.array(void_color, dtype=np.uint8), (256, 1))
    palette[: label_set.num_classes] = label_set.colors
    return palette[np.asarray(classes).astype(np.uint8)]


def classes_to_ids(classes: np.ndarray, label_set: LabelSet = CITYSCAPES, void_id: int | None = None) -> np.ndarray:
    """Class indices -> the ids stored in id-coded label PNGs (void -> `void_id`, default the
    set's `void_id_for`; LabelError if there are void pixels and the set has no void id)."""
    classes = np.asarray(classes)
    if void_id is None:
        void_id = void_id_for(label_set)
        if void_id is None:
            if (classes.astype(np.int64) >= label_set.num_classes).any():
                raise LabelError(f"label set {label_set.name!r} has no void id, but the class map has void pixels")
            void_id = label_set.classes[0].id  # never written: there is no void pixel
    table = np.full(256, void_id, dtype=np.uint8)
    table[: label_set.num_classes] = [c.id for c in label_set.classes]
    return table[np.asarray(classes).astype(np.uint8)]


def class_names(label_set: LabelSet = CITYSCAPES) -> list[str]:
    """Names of the layout's channels, void last."""
    return label_set.names + ["void"]


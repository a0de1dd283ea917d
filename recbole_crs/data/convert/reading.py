"""Reading input: ids, the item catalogue (item -> attributes) and JSON files, with errors that name the place.

Every format identifies items and attributes by non-negative integer ids (``7`` and ``"7"`` are one id);
:class:`Catalogue` says whether an id is unknown, out of range or an item without attributes.
"""

import json
import os

import numpy as np

from recbole_crs.data.atomic import UTF8_TEXT
from recbole_crs.data.convert.problems import EXAMPLES, WITHOUT_ATTRIBUTES, Problems
from recbole_crs.data.tokens import natural_key
from recbole_crs.errors import ConversionError, InvalidRecord


def int_token(value, where, kind):
    """Token of a non-negative integer id, given as a JSON int or a digit string (7 and "7" are one id)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidRecord("bad id", f"{where}: {kind} id {value!r} is not an integer")
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise InvalidRecord("bad id", f"{where}: {kind} id {value!r} is not a non-negative integer")
        value = int(value)
    if value < 0:
        raise InvalidRecord("id out of range", f"{where}: {kind} id {value} is negative")
    return str(value)


def as_list(value, where):
    if not isinstance(value, list):
        raise InvalidRecord("bad value", f"{where} is {type(value).__name__}, expected a list")
    return value


class Catalogue:
    """Items and their attributes, with what is needed to explain a bad item or attribute id."""

    def __init__(self, item_attributes, without_attributes, source):
        self.item_attributes = item_attributes  # token -> list of attribute tokens (non-empty)
        self.without_attributes = without_attributes  # item tokens listed with no attributes
        self.source = source
        self.attributes = {a for attrs in item_attributes.values() for a in attrs}
        self._attribute_sets = {item: set(attrs) for item, attrs in item_attributes.items()}
        self._item_range = _int_range(list(item_attributes) + list(without_attributes))
        self._attribute_range = _int_range(self.attributes)
        self._items_by_attribute = None

    def item(self, value, where):
        token = int_token(value, where, "item")
        if token in self.item_attributes:
            return token
        if token in self.without_attributes:
            raise InvalidRecord(WITHOUT_ATTRIBUTES, f"{where}: item {token} has no attributes in {self.source}")
        return self._unknown(token, where, "item", self._item_range)

    def attribute(self, value, where):
        token = int_token(value, where, "attribute")
        if token in self.attributes:
            return token
        return self._unknown(token, where, "attribute", self._attribute_range)

    def has(self, item, attribute):
        return attribute in self._attribute_sets[item]

    def items_with(self, attribute):
        """Items carrying ``attribute``, in item order, as a numpy string array (for vectorised filtering)."""
        if self._items_by_attribute is None:
            index = {}
            for item in sorted(self.item_attributes, key=natural_key):
                for attr in self.item_attributes[item]:
                    index.setdefault(attr, []).append(item)
            self._items_by_attribute = {attr: np.array(items) for attr, items in index.items()}
        return self._items_by_attribute[attribute]

    def _unknown(self, token, where, kind, id_range):
        if id_range and not id_range[0] <= int(token) <= id_range[1]:
            raise InvalidRecord(
                "id out of range",
                f"{where}: {kind} id {token} is outside {id_range[0]}..{id_range[1]} ({self.source})",
            )
        raise InvalidRecord(f"unknown {kind}", f"{where}: {kind} {token} is not in {self.source}")


def _int_range(tokens):
    numbers = [int(t) for t in tokens if t.isdigit()]
    return (min(numbers), max(numbers)) if numbers else None


def load_json(path, what):
    """Parse a JSON file, turning I/O and syntax errors into messages that name the file."""
    try:
        with open(path, encoding=UTF8_TEXT) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ConversionError(f"{what} file '{path}' does not exist.") from None
    except OSError as error:
        raise ConversionError(f"cannot read {what} file '{path}': {error.strerror or error}.") from None
    except json.JSONDecodeError as error:
        position = f"line {error.lineno} column {error.colno}"
        raise ConversionError(f"{what} file '{path}' is not valid JSON: {error.msg} at {position}.") from None
    except UnicodeDecodeError as error:
        raise ConversionError(f"{what} file '{path}' is not UTF-8 text: {error}.") from None


def load_item_dict(path, report, skip_invalid, drop_without_attributes, attributes_of):
    """Read ``item -> attributes`` JSON into a :class:`Catalogue`.

    ``attributes_of(value, where)`` extracts the attribute id list from one entry (formats differ). Entries
    that are malformed fail the conversion unless ``skip_invalid``; items with no attributes fail it unless
    ``drop_without_attributes`` (then every record that uses them is dropped or trimmed, and counted).
    """
    data = load_json(path, "item dict")
    if not isinstance(data, dict):
        raise ConversionError(
            f"item dict '{path}' must be a JSON object item -> attributes, got {type(data).__name__}."
        )
    problems = Problems(report, skip_invalid, f"entries of item dict '{path}'")
    item_attributes, without_attributes = {}, set()
    for key, value in data.items():
        where = f"{os.path.basename(path)}[{key!r}]"
        try:
            item = int_token(key, where, "item")
            raw = as_list(attributes_of(value, where), where)
            attrs = list(dict.fromkeys(int_token(a, where, "attribute") for a in raw))  # dedupe, keep order
        except InvalidRecord as invalid:
            problems.add(invalid)
            continue
        if attrs:
            item_attributes[item] = attrs
        else:
            without_attributes.add(item)
    problems.finish(len(data))
    check_without_attributes(without_attributes, path, drop_without_attributes, report)
    if not item_attributes:
        raise ConversionError(f"item dict '{path}' has no item with attributes.")
    return Catalogue(item_attributes, without_attributes, os.path.basename(path))


def check_without_attributes(items, source, drop, report):
    if not items:
        return
    examples = ", ".join(sorted(items, key=natural_key)[:EXAMPLES])
    if not drop:
        raise ConversionError(
            f"{len(items)} items have no attributes in {source} (e.g. {examples}); every CRS item needs at "
            "least one. Give them attributes, or pass --drop-items-without-attributes to drop them and the "
            "records that use them (counted in the report)."
        )
    report.notes.append(f"dropped {len(items)} items without attributes (e.g. {examples})")

"""The component registry (pricetune.registry): the names and values it
accepts, duplicates, merging another registry (provenance kept), and what
an unknown name gets. Its use by plugin loading is in test_plugins.py."""

from __future__ import annotations

import pytest

from pricetune.registry import ComponentRegistry, UnknownComponentError


class Dummy:
    pass


@pytest.mark.parametrize(
    "name",
    [
        "Bad Name", "LSTM", "", "-lstm", "_lstm", "a b", "lstm!", None, 3,
        "lstm\n",
    ],
)  # fmt: skip
def test_registry_rejects_bad_names(name):
    registry = ComponentRegistry("backbone")
    with pytest.raises(ValueError, match="lower-case"):
        registry.add(name, Dummy)
    assert len(registry) == 0


@pytest.mark.parametrize("name", ["lstm", "my-backbone", "v1.2_x", "0abc"])
def test_registry_accepts_good_names(name):
    registry = ComponentRegistry("backbone")
    registry.add(name, Dummy)
    assert registry.get(name) is Dummy
    assert name in registry
    info = registry.info(name)
    assert (info.kind, info.name, info.cls) == ("backbone", name, Dummy)
    assert info.class_path == f"{__name__}.Dummy"


@pytest.mark.parametrize("value", [Dummy(), lambda: Dummy, "tests.Dummy", None])
def test_registry_rejects_values_that_are_not_classes(value):
    registry = ComponentRegistry("head")
    with pytest.raises(TypeError, match="must be registered as a class"):
        registry.add("thing", value)
    assert "thing" not in registry


def test_registry_rejects_duplicates():
    registry = ComponentRegistry("strategy")
    registry.add("thing", Dummy)

    class Other:
        pass

    with pytest.raises(ValueError, match="already registered by .*Dummy"):
        registry.add("thing", Other)
    with pytest.raises(ValueError, match="already registered"):
        registry.add("thing", Dummy)
    assert registry.get("thing") is Dummy
    assert len(registry) == 1


def test_registry_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="kind must be one of"):
        ComponentRegistry("widget")


def test_registry_merge_keeps_existing_names_and_tags_provenance():
    first, second = ComponentRegistry("head"), ComponentRegistry("head")

    class Other:
        pass

    first.add("a", Dummy)
    second.add("a", Other)
    second.add("b", Other)
    clashes = first.merge(second, plugin="p", distribution="d", version="9")
    assert clashes == ["a"]
    assert first.get("a") is Dummy
    assert first.info("b").cls is Other
    assert (first.info("b").plugin, first.info("b").distribution) == ("p", "d")
    assert [info.name for info in first] == ["a", "b"]


def test_registry_unknown_name_with_nothing_registered():
    registry = ComponentRegistry("backbone")
    with pytest.raises(UnknownComponentError, match=r"\(none registered\)"):
        registry.get("lstm")
    with pytest.raises(UnknownComponentError):
        registry.get(["not", "hashable"])

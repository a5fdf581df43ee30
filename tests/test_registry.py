import pytest

from rvqvae.errors import UserError
from rvqvae.registry import Registry


class Base:
    """base"""


def test_register_get_and_describe():
    registry = Registry("widget", base=Base)

    @registry.register("fancy-widget", colour="blue")
    class Fancy(Base):
        """A fancy widget.

        More text."""

    assert registry.get("fancy-widget") is Fancy
    entry = registry.entry("fancy-widget")
    assert entry.description == "A fancy widget."
    assert entry.info == {"colour": "blue"}
    assert registry.names() == ["fancy-widget"] and "fancy-widget" in registry


def test_unknown_name_lists_known_ones():
    registry = Registry("widget")
    registry.register("b", 2)
    registry.register("a", 1)
    with pytest.raises(UserError, match=r"^widget 'c' is unknown; known: a, b$"):
        registry.get("c")


@pytest.mark.parametrize("name", ["", "Upper", "-lead", "has space", "a/b", None])
def test_malformed_names_are_refused(name):
    with pytest.raises(ValueError, match="malformed"):
        Registry("widget").register(name, 1)


def test_duplicates_refused_unless_replace():
    registry = Registry("widget")
    registry.register("x", 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("x", 2)
    registry.register("x", 3, replace=True)
    assert registry.get("x") == 3


def test_base_class_is_enforced():
    registry = Registry("widget", base=Base)
    with pytest.raises(TypeError, match="must derive from Base"):
        registry.register("bad", int)

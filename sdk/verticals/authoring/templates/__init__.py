"""File templates used by ``verticals new-pack`` (plain ``string.Template`` text, no template engine)."""

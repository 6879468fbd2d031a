"""Chaining the stages: the click CLI (`photodrag`), and later edit(), recipes, batch and the web editor."""

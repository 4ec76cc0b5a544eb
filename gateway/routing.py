"""Which RPC an HTTP request is for: every binding's template, matched on the raw path by verb."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.transcoding import Transcoder


@dataclass(frozen=True)
class Match:
    transcoder: Transcoder
    # Field path → the decoded value of its variable.
    values: dict[str, str]


class Router:
    def __init__(self, transcoders: Iterable[Transcoder]):
        by_verb: dict[str, list[Transcoder]] = {}
        for transcoder in transcoders:
            by_verb.setdefault(transcoder.binding.verb.upper(), []).append(transcoder)
        # Templates with fewer variables and more literal text first, so that a literal path is never
        # taken for a variable's value.
        for found in by_verb.values():
            found.sort(key=lambda t: (len(t.binding.template.variables), -len(t.binding.template.text)))
        self._by_verb = by_verb

    @property
    def transcoders(self) -> list[Transcoder]:
        return [t for found in self._by_verb.values() for t in found]

    def find(self, verb: str, raw_path: str) -> Match | None:
        """The binding for the verb and path; None when none matches (see `allowed`). Raises
        UnicodeDecodeError for a percent-encoded value that is not UTF-8."""
        for transcoder in self._by_verb.get(verb, ()):
            values = transcoder.binding.template.match(raw_path)
            if values is not None:
                return Match(transcoder, values)
        return None

    def allowed(self, raw_path: str) -> list[str]:
        """The verbs some binding serves the path with, for a 405's Allow header."""
        return sorted(
            verb
            for verb, found in self._by_verb.items()
            if any(t.binding.template.regex.fullmatch(raw_path) for t in found)
        )

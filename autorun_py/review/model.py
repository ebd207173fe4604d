"""What a review file holds: its metadata, the questions and the user's answers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TypedDict


class AnswerJSON(TypedDict):
    number: int
    question: str
    answer: str


@dataclass(frozen=True)
class Answer:
    """One question of a review file and the user's answer."""
    number: int
    question: str
    answer: str  # "" when unanswered

    def to_json(self) -> AnswerJSON:
        return {"number": self.number, "question": self.question, "answer": self.answer}


class MetaJSON(TypedDict, total=False):
    v: int
    nonce: str
    title: str
    created_at: str
    orch_dir: Optional[str]
    stage: Optional[int]
    questions: list[str]


@dataclass(frozen=True)
class ReviewMeta:
    """A review file's metadata block."""
    version: int = 1
    nonce: str = ""
    title: str = ""
    created_at: str = ""
    orch_dir: Optional[Path] = None
    stage: Optional[int] = None
    questions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReviewDoc:
    """A parsed review file.

    ``done``: the user ticked the done box. ``problems``: damage to the file's
    structure worth telling the user (e.g. an answer's marker line deleted).
    """

    meta: Optional[ReviewMeta]
    answers: tuple[Answer, ...]
    done: bool = False
    problems: tuple[str, ...] = ()

    @property
    def answered(self) -> int:
        return sum(1 for a in self.answers if a.answer)

    @property
    def complete(self) -> bool:
        """Every question has an answer, or the user said they are done."""
        return bool(self.answers) and (self.done or self.answered == len(self.answers))

"""Prompt-injection and jailbreak detection that runs locally.

Three layers: normalisation of obfuscations (``normalize``), pattern rules (``rules``)
and a small hashed n-gram classifier (``classifier``), combined by ``InjectionDetector``:
``scan`` for user questions, ``scan_passage`` for retrieved document passages.
"""

from __future__ import annotations

from keel.policy.injection.classifier import InjectionClassifier
from keel.policy.injection.detector import InjectionDetector, InjectionVerdict
from keel.policy.injection.normalize import NormalizedText, normalize

__all__ = ["InjectionClassifier", "InjectionDetector", "InjectionVerdict", "NormalizedText", "normalize"]

"""Where a run keeps its jobs: the job ledger always, the result cache when it is on."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .ledger import JobLedger, ledger_for
from .result_cache import ResultCache, default_result_cache, result_cache_directory


@dataclass(frozen=True)
class JobStore:
    """The ledger (which jobs may exist at fal: never pay twice, never lose a paid result) and
    the result cache, or None when finished results must not be re-used. The cache switch only
    decides the second: the ledger and single flight work either way."""

    ledger: JobLedger
    cache: ResultCache | None = None

    @classmethod
    def beside(cls, cache: ResultCache) -> "JobStore":
        return cls(ledger_for(cache.directory), cache)

    @property
    def kept_where(self) -> str:
        """Where a result finished after its run stopped waiting is kept (see JobEnding.kept)."""
        return "cache" if self.cache is not None else "fal"


def default_job_store(use_result_cache: bool = True, environ: Mapping[str, str] = os.environ,
                      app_directory: Path | None = None) -> JobStore:
    """The store configured by the environment: its ledger sits in the result cache's folder
    whether or not the cache is switched on (by the node's input or FAL_KONTEXT_RESULT_CACHE)."""
    cache = (default_result_cache(environ, app_directory=app_directory) if use_result_cache
             else None)
    directory = (cache.directory if cache is not None
                 else result_cache_directory(environ, app_directory=app_directory))
    return JobStore(ledger_for(directory), cache)

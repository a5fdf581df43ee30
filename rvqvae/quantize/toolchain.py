"""The C++ compiler the CPU backends build with (``fused`` compiles its kernel; ``compiled``'s
``torch.compile`` has Inductor build C++): ``$CXX`` when set, else the first of g++, c++,
clang++ on PATH. One rule for both, so a backend is never listed as available with a compiler
the other would not use."""

from __future__ import annotations

import os
import shutil

COMPILERS = ("g++", "c++", "clang++")


def cxx_compiler() -> str | None:
    """The compiler's path, or None when ``$CXX`` (if set) or every default is missing."""
    wanted = os.environ.get("CXX")
    for name in (wanted,) if wanted else COMPILERS:
        found = shutil.which(name)
        if found:
            return found
    return None

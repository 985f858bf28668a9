"""Event selections (skims) run with coffea over NanoAOD files.

:mod:`hepchain.skim.common` holds the shared runner, input checks and cutflow;
:mod:`hepchain.skim.vh` the VH(->WW) DFOS e-mu skim.  Submodules are imported
on use, so that importing :mod:`hepchain.skim` does not import coffea.
"""

from __future__ import annotations

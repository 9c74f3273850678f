"""IC-TIP coded victim records: code lists, reading, validation and pseudonymous keys, and the
stratified capture histories of linked persons (linked by :mod:`tipstat.linkage`, which reads
these records; this package imports no linkage and no model).

>>> from tipstat import ictip
>>> ictip.codelists.load("sex").codes
('F', 'M', '_O', '_U')
"""

from . import codelists
from .records import Records, read_ctdc, read_records
from .sources import detect_format
from .strata import capture_histories
from .validation import ValidationReport, validate_capture_table

__all__ = ["Records", "ValidationReport", "capture_histories", "codelists", "detect_format",
           "read_ctdc", "read_records", "validate_capture_table"]

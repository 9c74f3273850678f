"""IC-TIP coded victim records: code lists, reading and validation, stratified capture histories.

>>> from tipstat import ictip
>>> ictip.codelists.load("sex").codes
('F', 'M', '_O', '_U')
"""

from . import codelists
from .records import Records, read_ctdc, read_records
from .strata import capture_histories, persons
from .validation import ValidationReport, validate_capture_table

__all__ = ["Records", "ValidationReport", "capture_histories", "codelists", "persons",
           "read_ctdc", "read_records", "validate_capture_table"]

"""Tests of the pilot report page (rainlm.pilot.page)."""

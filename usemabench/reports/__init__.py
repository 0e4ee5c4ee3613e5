"""Reports: charts and the static HTML report, generated from records."""

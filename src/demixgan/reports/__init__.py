"""Reports: image grids, figures and pages that show results to people."""

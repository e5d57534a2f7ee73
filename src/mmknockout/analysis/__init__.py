"""Selection of grid points, aggregation into tables, statistics and figures."""

-- Number 11 on SQLite rewrote the status rules (`CHECK (status IN (…))`) as comparisons,
-- because SQLite checked such a list by building a temporary b-tree for every row.
-- PostgreSQL checks a list in place already: nothing changes here.
SELECT 1;

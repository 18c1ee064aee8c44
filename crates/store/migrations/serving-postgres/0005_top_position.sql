-- The top list is read in list order a page at a time: an index on the
-- position lets a page read its rows instead of sorting the whole list.
CREATE INDEX idx_list_position ON app_recommendationdata (list_position);

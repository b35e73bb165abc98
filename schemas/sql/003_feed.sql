-- The home feed as a fan-out-on-write read model (GET /feed).
--
-- One row per (reader, recipe) the reader's feed shows: every live recipe of every user the
-- reader follows, and the reader's own. Reading a page is then one backward range scan of
-- the primary key, whatever the number or activity of the people followed; the query over
-- follows and recipes it replaces cost O(followees x their recipes) on dense graphs.
--
-- The projection keeps, after every event, exactly
--     {(u, r) : r in recipes AND (u = r.author_id OR (u, r.author_id) in follows)}
-- RecipeCreated adds the recipe for its author and the author's followers; RecipeDeleted
-- removes it from the same readers; a new follow adds the followee's live recipes; an
-- unfollow removes them. Each step computes its delta from the other table's current rows,
-- so the result does not depend on how partitions interleave, and a rebuild gives the
-- same rows. Rows: sum over follows of the followee's recipes, plus one per recipe.
CREATE TABLE stockpot.feed_entries (
    user_id   bigint NOT NULL,              -- the reader
    recipe_id bigint NOT NULL,
    PRIMARY KEY (user_id, recipe_id)        -- a page: user_id = $1 ORDER BY recipe_id DESC
);

-- A read model built before this migration gets its rows from the tables above.
INSERT INTO stockpot.feed_entries (user_id, recipe_id)
SELECT r.author_id, r.id FROM stockpot.recipes r
UNION
SELECT f.follower_id, r.id FROM stockpot.follows f JOIN stockpot.recipes r
    ON r.author_id = f.followee_id;

-- Read models of issue 4 (people and engagement): counters, follows, likes, comments,
-- notifications and what the query API needs to know about sessions.
-- Every counter equals a count over the rows below; the projection keeps them in step.

ALTER TABLE stockpot.users
    ADD COLUMN follower_count  bigint NOT NULL DEFAULT 0,   -- rows of follows with followee_id = id
    ADD COLUMN following_count bigint NOT NULL DEFAULT 0,   -- rows of follows with follower_id = id
    ADD COLUMN recipe_count    bigint NOT NULL DEFAULT 0;   -- rows of recipes with author_id = id

ALTER TABLE stockpot.recipes
    ADD COLUMN like_count    bigint NOT NULL DEFAULT 0,     -- rows of likes with recipe_id = id
    ADD COLUMN comment_count bigint NOT NULL DEFAULT 0;     -- rows of comments with recipe_id = id

-- UserFollowed / UserUnfollowed.
CREATE TABLE stockpot.follows (
    follower_id bigint NOT NULL,
    followee_id bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (follower_id, followee_id)      -- also serves GET /users/{id}/following
);
CREATE INDEX follows_followee_idx ON stockpot.follows (followee_id, follower_id);

-- RecipeLiked / RecipeUnliked; kept when the recipe is deleted (facts of the liker's
-- stream, so the table does not depend on how partitions interleave); readers join live recipes.
CREATE TABLE stockpot.likes (
    recipe_id  bigint NOT NULL,
    user_id    bigint NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (recipe_id, user_id)
);
CREATE INDEX likes_user_idx ON stockpot.likes (user_id, recipe_id);

-- RecipeCommented / CommentDeleted; kept when the recipe is deleted, like likes.
CREATE TABLE stockpot.comments (
    id         bigint PRIMARY KEY,
    recipe_id  bigint NOT NULL,
    user_id    bigint NOT NULL,                 -- the comment's author
    content    text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX comments_recipe_idx ON stockpot.comments (recipe_id, id DESC);

-- One row per notification, never removed by unfollow, unlike or comment deletion.
-- id = ((event_time_ms - 1704067200000) << 22) | ((partition & 0x3FF) << 12) | (offset & 0xFFF)
-- of the causing event, so a rebuild gives the same ids; (partition, offset) is its log
-- position, the SSE event id of GET /notifications/stream.
CREATE TABLE stockpot.notifications (
    id         bigint PRIMARY KEY,
    user_id    bigint NOT NULL,                 -- the recipient
    kind       text NOT NULL CHECK (kind IN ('follow', 'like', 'comment')),
    actor_id   bigint NOT NULL,                 -- who followed, liked or commented
    recipe_id  bigint,                          -- like and comment
    comment_id bigint,                          -- comment
    partition  integer NOT NULL,
    "offset"   bigint NOT NULL,
    created_at timestamptz NOT NULL,            -- the causing event's time
    UNIQUE (partition, "offset")
);
CREATE INDEX notifications_user_idx ON stockpot.notifications (user_id, id DESC);

-- NotificationsRead: a user's notifications with id <= up_to_id are read.
CREATE TABLE stockpot.notification_reads (
    user_id  bigint PRIMARY KEY,
    up_to_id bigint NOT NULL
);

-- SessionStarted / SessionRefreshed / SessionRevoked, without any hash: lets the query
-- API refuse access tokens of revoked or expired sessions.
CREATE TABLE stockpot.sessions (
    id         bigint PRIMARY KEY,
    user_id    bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked    boolean NOT NULL DEFAULT false
);

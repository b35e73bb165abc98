-- Read models of the PostgreSQL projection "pg", plus projection bookkeeping.
-- Public tables never carry emails, password hashes or token hashes.
CREATE SCHEMA IF NOT EXISTS stockpot;

CREATE TABLE stockpot.users (
    id              bigint PRIMARY KEY,
    username        text NOT NULL UNIQUE,
    full_name       text,
    bio             text,
    avatar_media_id bigint,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         bigint NOT NULL          -- stream version of user-<id>
);

CREATE TABLE stockpot.recipes (
    id              bigint PRIMARY KEY,
    author_id       bigint NOT NULL,
    title           text NOT NULL,
    description     text NOT NULL,
    ingredients     jsonb NOT NULL,          -- array of strings
    steps           jsonb NOT NULL,          -- array of strings
    tags            text[] NOT NULL,
    image_media_ids bigint[] NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         bigint NOT NULL          -- stream version of recipe-<id>
);
CREATE INDEX recipes_author_idx ON stockpot.recipes (author_id, id DESC);

CREATE TABLE stockpot.recipe_tags (
    tag       text NOT NULL,                 -- as written by the author
    recipe_id bigint NOT NULL,
    PRIMARY KEY (tag, recipe_id)
);
CREATE INDEX recipe_tags_recipe_idx ON stockpot.recipe_tags (recipe_id);

-- One row per projection and log partition: the offset of the next event to apply.
-- Written in the same transaction as the view changes it covers.
CREATE TABLE stockpot.checkpoints (
    projection  text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, partition)
);

-- Poison events skipped under projector.poison_policy = dead-letter.
CREATE TABLE stockpot.dead_letters (
    id          bigserial PRIMARY KEY,
    projection  text NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint NOT NULL,
    event_id    text,                        -- NULL when the record could not be decoded
    event_type  text,
    error       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (projection, partition, "offset")
);

-- Read models of chat (issue 12): rooms, their members, messages, the room events the
-- query API streams (GET /chat/stream), and message notifications.
--
-- Every event of a room is on its stream conversation-<id>, so on every log backend the
-- room's events are in one partition, in order: offsets of one room compare as its
-- history does. Nothing here depends on how partitions interleave, except chat_events.seq
-- (see there), so a rebuild gives the same rows.

-- ConversationCreated / ConversationUpdated; every event of the stream moves version, and
-- MessageSent the last message.
CREATE TABLE stockpot.conversations (
    id               bigint PRIMARY KEY,
    is_group         boolean NOT NULL,
    title            text,                   -- groups only
    admin_id         bigint,                 -- groups: the creator, then ConversationUpdated's
    creator_id       bigint NOT NULL,
    created_at       timestamptz NOT NULL,
    version          bigint NOT NULL,        -- stream version of conversation-<id>
    last_message_id  bigint,                 -- greatest message id; NULL before the first
    last_activity_at timestamptz NOT NULL,   -- time of that message, else created_at
    activity_id      bigint NOT NULL         -- greatest(id, last_message_id): the cursor of
                                             -- GET /chat/rooms (Snowflake ids are time-ordered)
);

-- One row per membership span: ConversationCreated (every member) or MemberAdded opens
-- one, MemberRemoved closes it (left_offset). A removed member's row is kept, marked left,
-- not deleted: the chat stream shows a user a room's events only inside their spans (the
-- MemberRemoved of their own removal is the last), also when it resumes from an old
-- Last-Event-ID, and a user added again gets a new span from their MemberAdded on.
-- At most one open span per (room, user): conversation_members_current.
CREATE TABLE stockpot.conversation_members (
    conversation_id bigint NOT NULL,
    user_id         bigint NOT NULL,
    joined_offset   bigint NOT NULL,         -- log offset of the event that opened the span
    joined_at       timestamptz NOT NULL,
    left_offset     bigint,                  -- offset of the MemberRemoved; NULL: a member
    left_at         timestamptz,
    read_up_to      bigint NOT NULL,         -- read marker: messages with id <= it are read;
                                             -- starts at the room's last message (history
                                             -- from before one joined is not unread)
    PRIMARY KEY (conversation_id, user_id, joined_offset)
);
CREATE UNIQUE INDEX conversation_members_current
    ON stockpot.conversation_members (conversation_id, user_id) WHERE left_offset IS NULL;
CREATE INDEX conversation_members_user_idx
    ON stockpot.conversation_members (user_id, conversation_id, joined_offset);

-- MessageSent. (partition, offset) is the position of its event.
CREATE TABLE stockpot.messages (
    id              bigint PRIMARY KEY,
    conversation_id bigint NOT NULL,
    sender_id       bigint NOT NULL,
    content         text NOT NULL,
    txn_id          text NOT NULL,           -- the sender's transaction id (shown to them only)
    created_at      timestamptz NOT NULL,
    partition       integer NOT NULL,
    "offset"        bigint NOT NULL
);
-- history pages, and unread counts as index-only scans
CREATE INDEX messages_conversation_idx
    ON stockpot.messages (conversation_id, id) INCLUDE (sender_id);

-- Every chat event, for GET /chat/stream: a user sees the events of a room whose offset
-- lies in one of their spans of it. data: the payload of the event (ids as strings), with
-- admin_id added for a group's ConversationCreated; NULL for messages (in messages).
CREATE SEQUENCE stockpot.chat_event_seq;
CREATE TABLE stockpot.chat_events (
    partition       integer NOT NULL,
    "offset"        bigint NOT NULL,
    -- The stream's delivery order: one value of chat_event_seq per batch of the projection,
    -- taken after the projection's lock (pg_batch_begin), so greater in a batch that commits
    -- later: a stream that has sent (seq, partition, offset) never sees an earlier one appear,
    -- whatever the number of partitions. The one column that is no function of the log: the
    -- checksum leaves it out and a rebuild keeps the values of the rows it had.
    seq             bigint NOT NULL,
    conversation_id bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('room_created', 'room_updated',
                                                  'member_added', 'member_removed',
                                                  'message', 'read')),
    message_id      bigint,                  -- message: the message
    data            jsonb,
    created_at      timestamptz NOT NULL,    -- the event's time
    PRIMARY KEY (partition, "offset")
);
CREATE INDEX chat_events_conversation_idx
    ON stockpot.chat_events (conversation_id, seq, partition, "offset");

-- Message notifications: one per member and room while it is pending (not yet covered by
-- the member's MessagesRead, and the member not removed): each MessageSent to the room moves
-- it to that message (its id, position, time, actor), so it is unread again if
-- NotificationsRead covered it. Ids and positions are unique per recipient now: one
-- MessageSent notifies every other member.
ALTER TABLE stockpot.notifications
    DROP CONSTRAINT notifications_kind_check,
    ADD CONSTRAINT notifications_kind_check
        CHECK (kind IN ('follow', 'like', 'comment', 'message')),
    ADD COLUMN conversation_id bigint,           -- message
    ADD COLUMN message_id      bigint,           -- message: the latest message it announces
    ADD COLUMN pending         boolean;          -- message: true while pending, else NULL/false
ALTER TABLE stockpot.notifications
    DROP CONSTRAINT notifications_pkey,
    ADD CONSTRAINT notifications_pkey PRIMARY KEY (user_id, id),
    DROP CONSTRAINT notifications_partition_offset_key,
    ADD CONSTRAINT notifications_partition_offset_key UNIQUE (user_id, partition, "offset");
-- the primary key serves a user's notifications newest first
DROP INDEX stockpot.notifications_user_idx;
CREATE UNIQUE INDEX notifications_pending_idx
    ON stockpot.notifications (user_id, conversation_id) WHERE pending;

/*
 * PostgreSQL LISTEN/NOTIFY channels between the projector and the query API: part of the
 * read model's contract, like its tables. A NOTIFY is delivered when its transaction
 * commits, once per transaction for identical payloads; payloads are empty.
 */
#ifndef SP_PG_CHANNELS_H
#define SP_PG_CHANNELS_H

/* NOTIFYed by the "pg" projection in every transaction that adds rows to
 * stockpot.notifications (or moves a pending message notification to a newer message);
 * the query API's notification streams LISTEN to it. */
#define SP_PG_CHANNEL_NOTIFICATIONS "stockpot_notifications"

/* NOTIFYed by the "pg" projection in every transaction that adds rows to
 * stockpot.chat_events; the query API's chat streams (GET /chat/stream) LISTEN to it. */
#define SP_PG_CHANNEL_CHAT "stockpot_chat"

#endif

/* libFuzzer target for es_event_decode: any input must decode or fail cleanly, and a
 * decoded event must encode and decode again to the same attributes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "es/event.h"

#include "sp/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct es_event ev, back;
    struct sp_errbuf eb;
    struct sp_buf buf;

    es_event_init(&ev);
    es_event_init(&back);
    sp_buf_init(&buf, 0);
    if (es_event_decode(data, size, &ev, &eb) == 0) {
        if (es_event_encode(&ev, &buf, &eb) != 0)
            abort();
        if (es_event_decode(buf.data, buf.len, &back, &eb) != 0)
            abort();
        if (strcmp(ev.id, back.id) != 0 || strcmp(ev.type, back.type) != 0 ||
            ev.stream_version != back.stream_version || !json_equal(ev.data, back.data))
            abort();
    }
    es_event_release(&ev);
    es_event_release(&back);
    sp_buf_release(&buf);
    return 0;
}

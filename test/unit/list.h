/* Every unit test, by module. Each module keeps its own list file. */
#include "test/unit/list_avro.h"
#include "test/unit/list_codec.h"
#include "test/unit/list_config.h"
#include "test/unit/list_consume.h"
#include "test/unit/list_core.h"
#include "test/unit/list_payload.h"
#include "test/unit/list_produce.h"
#include "test/unit/list_session.h"

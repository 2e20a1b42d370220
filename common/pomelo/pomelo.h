/* The pomelo client protocol (protocol.md), transport-agnostic: package framing, the
 * message layer, the route dictionary, handshake and kick bodies, and the server-side
 * connection state machine. Include this or the individual headers. */
#ifndef TN_POMELO_H
#define TN_POMELO_H

#include "pml_conn.h"
#include "pml_dict.h"
#include "pml_handshake.h"
#include "pml_message.h"
#include "pml_package.h"

#endif

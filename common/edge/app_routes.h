/* The routes of the chat application (chatofpomelo), shared by gate and connectors so
 * both build the same route dictionary: sorted, numbered from 1, like pomelo's
 * dictionary component (chat.chatHandler.send = 1, connector.entryHandler.enter = 2,
 * gate.gateHandler.queryEntry = 3). */
#ifndef TN_APP_ROUTES_H
#define TN_APP_ROUTES_H

enum tn_app_route {
	TN_ROUTE_CHAT_SEND = 0,
	TN_ROUTE_ENTER = 1,
	TN_ROUTE_QUERY_ENTRY = 2,
	TN_ROUTE_COUNT_ = 3,
};

static const char *const tn_app_routes[TN_ROUTE_COUNT_] = {
	"chat.chatHandler.send",
	"connector.entryHandler.enter",
	"gate.gateHandler.queryEntry",
};

#endif

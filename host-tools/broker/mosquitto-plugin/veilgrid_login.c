/*
 * mosquitto 2.0 plugin: meters log in with a fresh password for every connection, which only veilgrid's
 * login service can check (host-tools/broker/meter-logins.ts, docs/broker-login.md). This plugin hands
 * each login whose password has the meter-login form ("vgl1." ...) to that service on 127.0.0.1 and
 * defers every other login to mosquitto's password file (the services' users). It keeps no state and
 * implements no part of the login format: one line out, one line back, per CONNECT.
 *
 *   plugin /path/to/veilgrid_login.so
 *   plugin_opt_login_port 18830
 *
 * The exchange: "<username>\t<password>\n" -> "ok\n" or "no <reason>\n". It blocks mosquitto's loop
 * for the time of one loopback round trip (bounded by a 2 s timeout; an unreachable service refuses
 * meter logins and says so in mosquitto's log).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define LOGIN_PREFIX "vgl1."
#define MAX_FIELD 512
#define TIMEOUT_SECONDS 2

static mosquitto_plugin_id_t *plugin_id;
static int login_port;

/* Has text a tab, a newline or more than MAX_FIELD bytes (it could not travel on one line)? */
static int unfit(const char *text)
{
	return strlen(text) > MAX_FIELD || strpbrk(text, "\t\r\n") != NULL;
}

/* 1 when the login service accepts the login, 0 otherwise (logging why not). */
static int service_accepts(const char *username, const char *password)
{
	char request[2 * MAX_FIELD + 3];
	char reply[256];
	struct sockaddr_in address;
	struct timeval timeout = { TIMEOUT_SECONDS, 0 };
	size_t got = 0;
	int fd;

	if(unfit(username) || unfit(password)) return 0;
	snprintf(request, sizeof(request), "%s\t%s\n", username, password);

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if(fd < 0) return 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
	memset(&address, 0, sizeof(address));
	address.sin_family = AF_INET;
	address.sin_port = htons((uint16_t)login_port);
	address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if(connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0
			|| send(fd, request, strlen(request), 0) != (ssize_t)strlen(request)){
		mosquitto_log_printf(MOSQ_LOG_ERR, "veilgrid_login: login service on 127.0.0.1:%d unreachable; refusing meter %s", login_port, username);
		close(fd);
		return 0;
	}
	while(got < sizeof(reply) - 1){
		ssize_t n = recv(fd, reply + got, sizeof(reply) - 1 - got, 0);
		if(n <= 0) break;
		got += (size_t)n;
		if(memchr(reply, '\n', got)) break;
	}
	close(fd);
	reply[got] = '\0';
	if(strcmp(reply, "ok\n") == 0) return 1;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "veilgrid_login: meter %s refused: %s", username, got ? reply : "no answer from the login service\n");
	return 0;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	(void)event;
	(void)userdata;
	if(ed->password == NULL || strncmp(ed->password, LOGIN_PREFIX, strlen(LOGIN_PREFIX)) != 0){
		return MOSQ_ERR_PLUGIN_DEFER;
	}
	if(ed->username == NULL) return MOSQ_ERR_AUTH;
	return service_accepts(ed->username, ed->password) ? MOSQ_ERR_SUCCESS : MOSQ_ERR_AUTH;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	(void)supported_version_count;
	(void)supported_versions;
	return 5;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options, int option_count)
{
	int i;
	(void)userdata;
	for(i = 0; i < option_count; i++){
		if(strcmp(options[i].key, "login_port") == 0) login_port = atoi(options[i].value);
	}
	if(login_port <= 0 || login_port > 65535){
		mosquitto_log_printf(MOSQ_LOG_ERR, "veilgrid_login: set plugin_opt_login_port to the port of 'veilgrid broker logins'");
		return MOSQ_ERR_INVAL;
	}
	plugin_id = identifier;
	return mosquitto_callback_register(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	(void)options;
	(void)option_count;
	return mosquitto_callback_unregister(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
}

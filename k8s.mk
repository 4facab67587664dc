# kmt on Kubernetes: two regions (two kops clusters, or clusters you bring),
# Kafka, MirrorMaker 2, the kmt fleet, Prometheus/Grafana and Chaos Mesh.
# Included by the Makefile; docs/kubernetes.md walks through the targets.
# Every target can be run again (it converges), and stops at the first
# failing command.

SHELL := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# --- Where the regions run ----------------------------------------------
# Your own clusters: set both kubeconfig contexts (the same context twice
# puts both regions in one cluster, deploy/overlays/single-cluster). Leave
# both unset to create two clusters with kops.
SOURCE_CONTEXT ?=
DEST_CONTEXT ?=
# In two clusters the controller (in the destination) reaches the source API
# server at the address in your kubeconfig; override when that address is
# not reachable from the destination's pods.
SOURCE_API_SERVER ?=

# --- kops (only without SOURCE_CONTEXT/DEST_CONTEXT) -------------------------
KOPS_STATE_STORE ?=
SOURCE_REGION ?= us-east-1
DEST_REGION ?= eu-west-1
SOURCE_CLUSTER_NAME ?= kmt-source.k8s.local
DEST_CLUSTER_NAME ?= kmt-destination.k8s.local
SOURCE_ZONES ?= $(SOURCE_REGION)a $(SOURCE_REGION)b $(SOURCE_REGION)c
DEST_ZONES ?= $(DEST_REGION)a $(DEST_REGION)b $(DEST_REGION)c
NODE_COUNT ?= 6
NODE_SIZE ?= m6i.large
CONTROL_PLANE_SIZE ?= c6i.large
NODE_VOLUME_GB ?= 50
KUBERNETES_VERSION ?= 1.33.4
KOPS_VALIDATE_WAIT ?= 15m

# --- Image, charts, timeouts --------------------------------------------
IMAGE ?= ghcr.io/kmtproject/kmt:$(VERSION)
DOCKER ?= docker
KPS_CHART_VERSION ?= 87.5.0
CHAOS_MESH_CHART_VERSION ?= 2.7.2
MONITORING_NS ?= monitoring
CHAOS_MESH_NS ?= chaos-mesh
K8S_TIMEOUT ?= 15m
# make k8s-chaos SCENARIO=name runs $(SCENARIOS_DIR)/name.yaml.
SCENARIO ?=
SCENARIOS_DIR ?= scenarios
DASHBOARDS_DIR ?= grafana/dashboards

# --- Derived ------------------------------------------------------------------
K8S_BUILD := deploy/.build
ifneq ($(strip $(SOURCE_CONTEXT)$(DEST_CONTEXT)),)
K8S_MODE := byo
K8S_SRC := $(SOURCE_CONTEXT)
K8S_DST := $(DEST_CONTEXT)
else
K8S_MODE := kops
K8S_SRC := $(SOURCE_CLUSTER_NAME)
K8S_DST := $(DEST_CLUSTER_NAME)
endif
K8S_TOPOLOGY := $(if $(and $(K8S_SRC),$(filter $(K8S_SRC),$(K8S_DST))),single,two)
k8s_ctx_missing := $(if $(SOURCE_CONTEXT),$(if $(DEST_CONTEXT),,DEST_CONTEXT),$(if $(DEST_CONTEXT),SOURCE_CONTEXT))
KS := kubectl --context $(K8S_SRC)
KD := kubectl --context $(K8S_DST)
SRC_NS := kmt-source
DST_NS := kmt-destination
k8s_kps = helm upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack \
	--version $(KPS_CHART_VERSION) --namespace $(MONITORING_NS) --create-namespace \
	--wait --timeout $(K8S_TIMEOUT) --values deploy/helm/kube-prometheus-stack.yaml
k8s_chaos_mesh = helm upgrade --install chaos-mesh chaos-mesh/chaos-mesh \
	--version $(CHAOS_MESH_CHART_VERSION) --namespace $(CHAOS_MESH_NS) --create-namespace \
	--wait --timeout $(K8S_TIMEOUT) --values deploy/helm/chaos-mesh.yaml
# Only kmt's own series cross the WAN to the destination's Prometheus.
# (Shell words: expanded where $$addr holds the destination's address.)
k8s_remote_write = '[{"url":"http://'"$$addr"':9090/api/v1/write","writeRelabelConfigs":[{"sourceLabels":["__name__"],"regex":"kmt_.*|kafka_.*","action":"keep"}]}]'

# $(call k8s_lb_address,KUBECTL,NAMESPACE,SERVICE) prints the load balancer
# host or IP of SERVICE, waiting up to 10 minutes for the cloud to assign it.
k8s_lb_address = for i in $$(seq 120); do \
	a=$$($(1) -n $(2) get $(3) -o jsonpath='{.status.loadBalancer.ingress[0].hostname}{.status.loadBalancer.ingress[0].ip}'); \
	if [ -n "$$a" ]; then echo "$$a"; exit 0; fi; sleep 5; done; \
	echo "k8s: no load balancer address on $(3) in $(2) after 10 minutes" >&2; exit 1

# $(call k8s_kops_render,CLUSTER_NAME,ZONES) renders kops/cluster.yaml.
k8s_kops_render = @mkdir -p $(K8S_BUILD)/kops && sed \
	-e 's|[$$]{CLUSTER_NAME}|$(1)|g' -e 's|[$$]{KOPS_STATE_STORE}|$(KOPS_STATE_STORE)|g' \
	-e 's|[$$]{ZONE_A}|$(word 1,$(2))|g' -e 's|[$$]{ZONE_B}|$(word 2,$(2))|g' -e 's|[$$]{ZONE_C}|$(word 3,$(2))|g' \
	-e 's|[$$]{KUBERNETES_VERSION}|$(KUBERNETES_VERSION)|g' -e 's|[$$]{CONTROL_PLANE_SIZE}|$(CONTROL_PLANE_SIZE)|g' \
	-e 's|[$$]{NODE_SIZE}|$(NODE_SIZE)|g' -e 's|[$$]{NODE_COUNT}|$(NODE_COUNT)|g' -e 's|[$$]{NODE_VOLUME_GB}|$(NODE_VOLUME_GB)|g' \
	kops/cluster.yaml > $(K8S_BUILD)/kops/$(1).yaml && \
	if grep -n '[$$]{' $(K8S_BUILD)/kops/$(1).yaml; then echo "k8s: unrendered variables in $(K8S_BUILD)/kops/$(1).yaml" >&2; exit 1; fi

# --- Steps (canned recipes) ------------------------------------------------------
define k8s_preflight
	@if [ -n "$(k8s_ctx_missing)" ]; then echo "k8s: $(k8s_ctx_missing) is not set: set both SOURCE_CONTEXT and DEST_CONTEXT (the same context twice for one cluster), or neither to create the clusters with kops" >&2; exit 2; fi
	@for t in kubectl helm $(if $(filter kops,$(K8S_MODE)),kops); do command -v $$t >/dev/null || { echo "k8s: $$t is not on PATH (docs/kubernetes.md, Prerequisites)" >&2; exit 2; }; done
	@echo "k8s: $(K8S_MODE) clusters, $(K8S_TOPOLOGY) cluster(s): source=$(K8S_SRC) destination=$(K8S_DST) image=$(IMAGE)"
endef

define k8s_kops_preflight
	@test -n "$(KOPS_STATE_STORE)" || { echo "k8s: KOPS_STATE_STORE is required to create clusters with kops (e.g. s3://my-kops-state), or set SOURCE_CONTEXT and DEST_CONTEXT to use your own clusters" >&2; exit 2; }
	@test $(words $(SOURCE_ZONES)) -eq 3 -a $(words $(DEST_ZONES)) -eq 3 || { echo "k8s: SOURCE_ZONES and DEST_ZONES must list three zones each" >&2; exit 2; }
endef

define k8s_kops_create
	$(k8s_kops_preflight)
	$(call k8s_kops_render,$(SOURCE_CLUSTER_NAME),$(SOURCE_ZONES))
	$(call k8s_kops_render,$(DEST_CLUSTER_NAME),$(DEST_ZONES))
	kops replace --force -f $(K8S_BUILD)/kops/$(SOURCE_CLUSTER_NAME).yaml --state $(KOPS_STATE_STORE)
	kops replace --force -f $(K8S_BUILD)/kops/$(DEST_CLUSTER_NAME).yaml --state $(KOPS_STATE_STORE)
	kops update cluster --name $(SOURCE_CLUSTER_NAME) --state $(KOPS_STATE_STORE) --yes
	kops update cluster --name $(DEST_CLUSTER_NAME) --state $(KOPS_STATE_STORE) --yes
	kops export kubecfg --name $(SOURCE_CLUSTER_NAME) --state $(KOPS_STATE_STORE) --admin
	kops export kubecfg --name $(DEST_CLUSTER_NAME) --state $(KOPS_STATE_STORE) --admin
endef

define k8s_kops_validate
	$(k8s_kops_preflight)
	kops validate cluster --name $(SOURCE_CLUSTER_NAME) --state $(KOPS_STATE_STORE) --wait $(KOPS_VALIDATE_WAIT)
	kops validate cluster --name $(DEST_CLUSTER_NAME) --state $(KOPS_STATE_STORE) --wait $(KOPS_VALIDATE_WAIT)
endef

# kops delete cluster, skipping a cluster the state store does not know (so
# the target can be run again) and failing on any other error.
define k8s_kops_delete
	$(k8s_kops_preflight)
	@for c in $(SOURCE_CLUSTER_NAME) $(DEST_CLUSTER_NAME); do \
	  if ! out=$$(kops get cluster --name $$c --state $(KOPS_STATE_STORE) 2>&1); then \
	    case "$$out" in *"not found"*) echo "k8s: cluster $$c not in $(KOPS_STATE_STORE); nothing to delete"; continue ;; esac; \
	    echo "$$out" >&2; exit 1; \
	  fi; \
	  echo "kops delete cluster --name $$c --state $(KOPS_STATE_STORE) --yes"; \
	  kops delete cluster --name $$c --state $(KOPS_STATE_STORE) --yes; \
	done
endef

k8s_clusters = $(k8s_clusters_$(K8S_MODE))
define k8s_clusters_kops
	@echo "== clusters (kops)"
	$(k8s_kops_create)
	$(k8s_kops_validate)
endef
# (kubectl get --raw prints the body as is: /readyz's "ok" has no newline.)
define k8s_clusters_byo
	@echo "== clusters (your own)"
	$(KS) get --raw /readyz && echo
	$(if $(filter two,$(K8S_TOPOLOGY)),$(KD) get --raw /readyz && echo)
endef

k8s_helm_repos = helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update && \
	helm repo add chaos-mesh https://charts.chaos-mesh.org --force-update && \
	helm repo update prometheus-community chaos-mesh

k8s_monitoring = $(k8s_monitoring_$(K8S_TOPOLOGY))
define k8s_monitoring_two
	@echo "== Prometheus, Grafana and Chaos Mesh"
	$(k8s_helm_repos)
	$(k8s_kps) --kube-context $(K8S_DST) --values deploy/helm/kube-prometheus-stack-destination.yaml
	@set -euo pipefail; addr=$$($(call k8s_lb_address,$(KD),$(MONITORING_NS),service/kube-prometheus-stack-prometheus)); \
	  echo "k8s: the source Prometheus writes to http://$$addr:9090"; \
	  set -x; $(k8s_kps) --kube-context $(K8S_SRC) --values deploy/helm/kube-prometheus-stack-source.yaml \
	    --set-json prometheus.prometheusSpec.remoteWrite=$(k8s_remote_write)
	$(k8s_chaos_mesh) --kube-context $(K8S_DST)
	$(k8s_dashboards)
endef
define k8s_monitoring_single
	@echo "== Prometheus, Grafana and Chaos Mesh"
	$(k8s_helm_repos)
	$(k8s_kps) --kube-context $(K8S_DST) --values deploy/helm/kube-prometheus-stack-single.yaml
	$(k8s_chaos_mesh) --kube-context $(K8S_DST)
	$(k8s_dashboards)
endef

define k8s_dashboards
	@if ls $(DASHBOARDS_DIR)/*.json >/dev/null 2>&1; then \
	  set -ex; sh deploy/build.sh dashboards $(DASHBOARDS_DIR) $(MONITORING_NS); \
	  $(KD) apply --server-side --force-conflicts -k $(K8S_BUILD)/dashboards; \
	else echo "k8s: no $(DASHBOARDS_DIR)/*.json; Grafana starts without kmt's dashboards"; fi
endef

k8s_build_overlays = $(k8s_build_overlays_$(K8S_TOPOLOGY))
define k8s_build_overlays_two
	@sh deploy/build.sh overlay source overlays/source $(IMAGE)
	@sh deploy/build.sh overlay destination overlays/destination $(IMAGE)
endef
define k8s_build_overlays_single
	@sh deploy/build.sh overlay single overlays/single-cluster $(IMAGE)
endef

# $(call k8s_rollout,KUBECTL,NAMESPACE,KIND/NAME ...)
k8s_rollout = for r in $(3); do $(1) -n $(2) rollout status $$r --timeout=$(K8S_TIMEOUT) || exit 1; done

k8s_kafka = $(k8s_kafka_$(K8S_TOPOLOGY))
define k8s_kafka_two
	@echo "== Kafka in both regions"
	$(KS) apply -k $(K8S_BUILD)/source -l kmt.dev/layer=kafka
	$(KD) apply -k $(K8S_BUILD)/destination -l kmt.dev/layer=kafka
	$(call k8s_rollout,$(KS),$(SRC_NS),statefulset/kafka-controller statefulset/kafka-broker deployment/kafka-exporter)
	$(call k8s_rollout,$(KD),$(DST_NS),statefulset/kafka-controller statefulset/kafka-broker deployment/kafka-exporter)
	@set -euo pipefail; \
	  addrs=$$($(KS) -n $(SRC_NS) get services -l kmt.dev/broker-external=true \
	    -o jsonpath='{range .items[*]}{.status.loadBalancer.ingress[0].hostname}{.status.loadBalancer.ingress[0].ip}:9094,{end}'); \
	  addrs=$${addrs%,}; \
	  case ",$$addrs," in ,, | *,:9094,*) echo "k8s: source broker load balancers without an address: '$$addrs'" >&2; exit 1 ;; esac; \
	  echo "k8s: source brokers across the WAN: $$addrs"; \
	  $(KD) apply -f - <<< "$$($(KD) -n $(DST_NS) create configmap kmt-wan --from-literal=source.bootstrap.servers=$$addrs --dry-run=client -o yaml)"
	@set -euo pipefail; \
	  for i in $$(seq 60); do token=$$($(KS) -n $(SRC_NS) get secret kmt-controller-token -o jsonpath='{.data.token}'); [ -n "$$token" ] && break; sleep 2; done; \
	  [ -n "$$token" ] || { echo "k8s: secret $(SRC_NS)/kmt-controller-token has no token" >&2; exit 1; }; \
	  ca=$$($(KS) -n $(SRC_NS) get secret kmt-controller-token -o jsonpath='{.data.ca\.crt}'); \
	  server="$(SOURCE_API_SERVER)"; [ -n "$$server" ] || server=$$(kubectl config view --raw --minify --context $(K8S_SRC) -o jsonpath='{.clusters[0].cluster.server}'); \
	  kubeconfig() { printf 'apiVersion: v1\nkind: Config\nclusters:\n- name: source\n  cluster:\n    server: %s\n    certificate-authority-data: %s\nusers:\n- name: kmt-controller\n  user:\n    token: %s\ncontexts:\n- name: source\n  context:\n    cluster: source\n    user: kmt-controller\n    namespace: $(SRC_NS)\ncurrent-context: source\n' \
	    "$$server" "$$ca" "$$(printf %s "$$token" | base64 -d)"; }; \
	  echo "k8s: controller access to the source cluster at $$server"; \
	  $(KD) apply -f - <<< "$$($(KD) -n $(DST_NS) create secret generic kmt-source-kubeconfig --from-file=kubeconfig=<(kubeconfig) --dry-run=client -o yaml)"
endef
define k8s_kafka_single
	@echo "== Kafka in both regions"
	$(KD) apply -k $(K8S_BUILD)/single -l kmt.dev/layer=kafka
	$(call k8s_rollout,$(KD),$(SRC_NS),statefulset/kafka-controller statefulset/kafka-broker deployment/kafka-exporter)
	$(call k8s_rollout,$(KD),$(DST_NS),statefulset/kafka-controller statefulset/kafka-broker deployment/kafka-exporter)
endef

k8s_replicator = $(k8s_replicator_$(K8S_TOPOLOGY))
define k8s_replicator_two
	@echo "== MirrorMaker 2"
	$(KD) apply -k $(K8S_BUILD)/destination -l kmt.dev/layer=replicator
	$(call k8s_rollout,$(KD),$(DST_NS),deployment/mirrormaker2)
endef
define k8s_replicator_single
	@echo "== MirrorMaker 2"
	$(KD) apply -k $(K8S_BUILD)/single -l kmt.dev/layer=replicator
	$(call k8s_rollout,$(KD),$(DST_NS),deployment/mirrormaker2)
endef

k8s_fleet = $(k8s_fleet_$(K8S_TOPOLOGY))
define k8s_fleet_two
	@echo "== kmt producers and consumers"
	$(KS) apply -k $(K8S_BUILD)/source -l kmt.dev/layer=fleet
	$(KD) apply -k $(K8S_BUILD)/destination -l kmt.dev/layer=fleet
	$(call k8s_rollout,$(KS),$(SRC_NS),deployment/kmt-producer)
	$(call k8s_rollout,$(KD),$(DST_NS),deployment/kmt-consumer)
endef
define k8s_fleet_single
	@echo "== kmt producers and consumers"
	$(KD) apply -k $(K8S_BUILD)/single -l kmt.dev/layer=fleet
	$(call k8s_rollout,$(KD),$(SRC_NS),deployment/kmt-producer)
	$(call k8s_rollout,$(KD),$(DST_NS),deployment/kmt-consumer)
endef

# Foreground cascade: kubectl returns once the Deployments' pods are gone
# too (the default background cascade returns when the Deployment object is
# gone, its pods still running), so a redeploy never has two fleets running
# at once and its fresh pods never count the old ones' traffic.
k8s_delete_fleet = $(k8s_delete_fleet_$(K8S_TOPOLOGY))
define k8s_delete_fleet_two
	$(KS) delete -k $(K8S_BUILD)/source -l kmt.dev/layer=fleet --ignore-not-found --cascade=foreground --wait=true --timeout=$(K8S_TIMEOUT)
	$(KD) delete -k $(K8S_BUILD)/destination -l kmt.dev/layer=fleet --ignore-not-found --cascade=foreground --wait=true --timeout=$(K8S_TIMEOUT)
endef
define k8s_delete_fleet_single
	$(KD) delete -k $(K8S_BUILD)/single -l kmt.dev/layer=fleet --ignore-not-found --cascade=foreground --wait=true --timeout=$(K8S_TIMEOUT)
endef

define k8s_urls
	@echo "== ready"
	@set -euo pipefail; pw=$$($(KD) -n $(MONITORING_NS) get secret kube-prometheus-stack-grafana -o jsonpath='{.data.admin-password}' | base64 -d); \
	  echo "Grafana:    make k8s-grafana, then http://localhost:3000  (user admin, password $$pw)"; \
	  echo "Prometheus: make k8s-prometheus, then http://localhost:9090"; \
	  echo "Chaos:      make k8s-chaos SCENARIO=kill-source-broker  (scenarios: $$(ls $(SCENARIOS_DIR) 2>/dev/null | sed -n 's/\.yaml$$//p' | tr '\n' ' '))"; \
	  echo "Tear down:  make k8s-delete-all$(if $(filter kops,$(K8S_MODE)), (the clusters cost money while they run))"
endef

# --- Targets ------------------------------------------------------------------
.PHONY: image push k8s-all k8s-redeploy-tests k8s-delete-tests k8s-chaos k8s-grafana k8s-prometheus k8s-delete-all kops-create kops-validate kops-delete

image: ## Build the kmt container image IMAGE (default ghcr.io/kmtproject/kmt:VERSION).
	$(DOCKER) build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

push: image ## Push the kmt container image IMAGE to its registry.
	$(DOCKER) push $(IMAGE)

k8s-all: ## Two regions end to end: clusters, monitoring, Chaos Mesh, Kafka, MirrorMaker 2, kmt fleet.
	$(k8s_preflight)
	$(k8s_clusters)
	$(k8s_build_overlays)
	$(k8s_monitoring)
	$(k8s_kafka)
	$(k8s_replicator)
	$(k8s_fleet)
	$(k8s_urls)

k8s-redeploy-tests: ## Replace the kmt producers and consumers with fresh pods (new run ids, current IMAGE).
	$(k8s_preflight)
	$(k8s_build_overlays)
	$(k8s_delete_fleet)
	$(k8s_fleet)

k8s-delete-tests: ## Delete the kmt producers, consumers and controller Job; Kafka and monitoring stay.
	$(k8s_preflight)
	$(k8s_build_overlays)
	$(k8s_delete_fleet)
	$(KD) -n $(DST_NS) delete job kmt-controller --ignore-not-found --cascade=foreground --wait=true --timeout=$(K8S_TIMEOUT)

k8s-chaos: ## Run a scenario on the clusters as the controller Job: make k8s-chaos SCENARIO=kill-source-broker.
	$(k8s_preflight)
	@test -n "$(SCENARIO)" || { echo "k8s: SCENARIO is required, one of: $$(ls $(SCENARIOS_DIR) | sed -n 's/\.yaml$$//p' | tr '\n' ' ')" >&2; exit 2; }
	@sh deploy/build.sh chaos chaos/$(if $(filter two,$(K8S_TOPOLOGY)),two-clusters,single-cluster) $(IMAGE) $(SCENARIO) $(SCENARIOS_DIR)
	$(KD) -n $(DST_NS) delete job kmt-controller --ignore-not-found --cascade=foreground --wait=true --timeout=$(K8S_TIMEOUT)
	$(KD) apply -k $(K8S_BUILD)/chaos
	$(KD) -n $(DST_NS) logs -f job/kmt-controller --pod-running-timeout=10m
	@for i in $$(seq 60); do \
	  s=$$($(KD) -n $(DST_NS) get job kmt-controller -o jsonpath='{.status.succeeded}/{.status.failed}'); \
	  case "$$s" in 1/*) echo "k8s: scenario $(SCENARIO) PASSED"; exit 0 ;; */[1-9]*) echo "k8s: scenario $(SCENARIO) FAILED (kubectl -n $(DST_NS) describe job kmt-controller)" >&2; exit 1 ;; esac; \
	  sleep 2; done; echo "k8s: job kmt-controller did not finish" >&2; exit 1

k8s-grafana: ## Port-forward Grafana to http://localhost:3000 (Ctrl-C to stop).
	$(KD) -n $(MONITORING_NS) port-forward service/kube-prometheus-stack-grafana 3000:80

k8s-prometheus: ## Port-forward the Prometheus with both regions' metrics to http://localhost:9090.
	$(KD) -n $(MONITORING_NS) port-forward service/kube-prometheus-stack-prometheus 9090:9090

k8s-delete-all: ## Tear everything down: the kops clusters, or all kmt installed in your own clusters.
	$(k8s_preflight)
	$(k8s_delete_all_$(K8S_MODE))

define k8s_delete_all_kops
	$(k8s_kops_delete)
endef
define k8s_delete_all_byo
	helm --kube-context $(K8S_DST) uninstall chaos-mesh --namespace $(CHAOS_MESH_NS) --ignore-not-found --wait
	helm --kube-context $(K8S_DST) uninstall kube-prometheus-stack --namespace $(MONITORING_NS) --ignore-not-found --wait
	$(if $(filter two,$(K8S_TOPOLOGY)),helm --kube-context $(K8S_SRC) uninstall kube-prometheus-stack --namespace $(MONITORING_NS) --ignore-not-found --wait)
	$(if $(filter two,$(K8S_TOPOLOGY)),$(KS) delete namespace $(SRC_NS) $(MONITORING_NS) --ignore-not-found --wait=true --timeout=$(K8S_TIMEOUT))
	$(KD) delete namespace $(if $(filter single,$(K8S_TOPOLOGY)),$(SRC_NS)) $(DST_NS) $(MONITORING_NS) $(CHAOS_MESH_NS) --ignore-not-found --wait=true --timeout=$(K8S_TIMEOUT)
endef

kops-create: ## Create or update the two kops clusters (needs KOPS_STATE_STORE).
	$(k8s_kops_create)

kops-validate: ## Wait until both kops clusters validate (kops validate cluster --wait).
	$(k8s_kops_validate)

kops-delete: ## Delete both kops clusters (a cluster already gone is skipped).
	$(k8s_kops_delete)

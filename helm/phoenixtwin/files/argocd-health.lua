-- Argo CD health check of phoenixtwin.io/PhoenixTwin (resource.customizations, health.lua).
--
-- The operator writes status.observedGeneration, status.phase and the conditions Ready,
-- Progressing and Degraded, each with its own observedGeneration (docs/operator.md). A status
-- about an older generation than metadata.generation says nothing about the current spec, so
-- it is reported as Progressing until the operator has caught up.
--
-- Written for Argo CD's Lua (gopher-lua, Lua 5.1); tests/gitops runs it under gopher-lua and lua5.4.
local hs = {}

local function condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function message(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    if c.reason ~= nil and c.reason ~= "" then
      return c.reason .. ": " .. c.message
    end
    return c.message
  end
  return fallback
end

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end

local status = obj.status
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the twin's status"
  return hs
end

if status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
    .. " (status describes generation " .. tostring(status.observedGeneration) .. ")"
  return hs
end

-- A condition left over from an older generation is ignored, as if it were absent.
local function current(kind)
  local c = condition(status.conditions, kind)
  if c ~= nil and c.observedGeneration ~= nil and c.observedGeneration < generation then
    return nil
  end
  return c
end

local ready = current("Ready")
local progressing = current("Progressing")
local degraded = current("Degraded")

if status.phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: the operator is not reconciling this twin"
  return hs
end

if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = message(degraded, "The twin is degraded")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message(ready, "The twin is ready")
  return hs
end

if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = message(progressing, "The twin is rolling out")
  return hs
end

hs.status = "Progressing"
hs.message = message(ready, "Waiting for the twin to become Ready")
return hs
